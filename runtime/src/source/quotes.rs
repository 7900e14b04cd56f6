//! A seeded tape of stock quotes (`[source] type = "generator"`, `kind = "quotes"`): many
//! symbols ticking on one event-time clock, each price a geometric random walk whose returns
//! carry a little momentum, with volatility regimes (calm and volatile, switching as a Markov
//! chain), occasional jumps, and volume and spread that widen in the volatile regime.
//!
//! Unlike the other generators a tick depends on the symbol's history, so the tape is drawn in
//! order from one RNG; a resumed source replays the first `records` ticks without emitting them
//! (tens of millions of ticks a second), so it continues exactly where an unbroken run would be.
//!
//! Each record: `symbol`, `time` (epoch milliseconds), `price`, `volume`, `spread_bps`,
//! `regime` ("calm" or "volatile": ground truth for judging a clustering of regimes) and `up`
//! (1 when the symbol's NEXT tick is higher: the label of a next-tick direction forecast, known
//! to a replay of history; a live feed would attach it one tick late).

use eddy_features::{BatchBuilder, FieldType};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::generator::{push_generated, GeneratorConfig, Pace};
use super::{schema_of, BuildContext, Chunk, ChunkParts, Location, Position, Source};
use crate::error::Result;

/// The label field.
pub const QUOTES_TARGET: &str = "up";
/// Numeric fields, in record order.
pub const QUOTE_NUMBERS: [&str; 5] = ["time", "price", "volume", "spread_bps", QUOTES_TARGET];
/// String fields, in record order.
pub const QUOTE_STRINGS: [&str; 2] = ["symbol", "regime"];

/// 2026-01-05 14:30 UTC, a Monday's opening bell in New York: the tape's first timestamp.
const OPEN_MS: f64 = 1_767_623_400_000.0;

/// Per-tick dynamics of one regime.
struct Regime {
    name: &'static str,
    /// Standard deviation of a tick's log return.
    sigma: f64,
    /// Autocorrelation of consecutive log returns (momentum when > 0).
    phi: f64,
    /// Probability per tick of leaving the regime.
    leave: f64,
    volume: f64,
    spread_bps: f64,
}

const REGIMES: [Regime; 2] = [
    Regime {
        name: "calm",
        sigma: 0.0008,
        phi: 0.3,
        leave: 1.0 / 2_000.0,
        volume: 100.0,
        spread_bps: 2.0,
    },
    Regime {
        name: "volatile",
        sigma: 0.003,
        phi: 0.15,
        leave: 1.0 / 600.0,
        volume: 400.0,
        spread_bps: 9.0,
    },
];

/// Probability per tick of a jump, and its size in units of the regime's sigma.
const JUMP_PROBABILITY: f64 = 0.002;
const JUMP_SIGMAS: f64 = 8.0;

struct Symbol {
    name: String,
    price: f64,
    regime: usize,
    /// The log return of the symbol's next tick, drawn one tick ahead so `up` can be told.
    pending: f64,
}

/// One tick; `symbol` indexes [`QuoteTape::symbol_names`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quote {
    pub symbol: usize,
    pub time_ms: f64,
    pub price: f64,
    pub volume: f64,
    pub spread_bps: f64,
    pub regime: &'static str,
    pub up: f64,
}

/// The tape: every symbol's state and the shared clock, advanced one tick at a time.
pub struct QuoteTape {
    rng: Xoshiro256PlusPlus,
    symbols: Vec<Symbol>,
    time_ms: f64,
    /// Mean milliseconds between two ticks of the tape (each symbol ticks about once a second).
    gap_ms: f64,
}

impl QuoteTape {
    /// `symbols` tickers (at least one) with prices between about 20 and 500.
    pub fn new(seed: u64, symbols: usize) -> QuoteTape {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5_70C4);
        let mut names = std::collections::BTreeSet::new();
        let mut list = Vec::with_capacity(symbols.max(1));
        while list.len() < symbols.max(1) {
            let len = rng.gen_range(3..=4);
            let name: String = (0..len)
                .map(|_| char::from(b'A' + rng.gen_range(0..26u8)))
                .collect();
            if names.insert(name.clone()) {
                let price = (20f64.ln() + rng.gen::<f64>() * 25f64.ln()).exp();
                let regime = usize::from(rng.gen::<f64>() < 0.2);
                let mut symbol = Symbol {
                    name,
                    price: (price * 100.0).round() / 100.0,
                    regime,
                    pending: 0.0,
                };
                symbol.pending = REGIMES[regime].sigma * rng.sample::<f64, _>(StandardNormal);
                list.push(symbol);
            }
        }
        QuoteTape {
            rng,
            gap_ms: 1_000.0 / list.len() as f64,
            symbols: list,
            time_ms: OPEN_MS,
        }
    }

    pub fn symbol_names(&self) -> Vec<String> {
        self.symbols.iter().map(|s| s.name.clone()).collect()
    }

    /// The next tick of the tape.
    pub fn tick(&mut self) -> Quote {
        let rng = &mut self.rng;
        self.time_ms += (-self.gap_ms * (1.0 - rng.gen::<f64>()).ln())
            .round()
            .max(1.0);
        let index = rng.gen_range(0..self.symbols.len());
        let s = &mut self.symbols[index];
        let r = s.pending;
        s.price *= r.exp();
        let regime = &REGIMES[s.regime];
        let noise = |rng: &mut Xoshiro256PlusPlus| rng.sample::<f64, _>(StandardNormal);
        let volume = (regime.volume * (1.0 + (r / regime.sigma).abs()) * (0.4 * noise(rng)).exp())
            .round()
            .max(1.0);
        let spread_bps = regime.spread_bps * (0.25 * noise(rng)).exp();
        let name = regime.name;
        // The next tick's return: momentum from this one, noise, and now and then a jump, in
        // the regime the symbol is in after this tick.
        if rng.gen::<f64>() < regime.leave {
            s.regime = 1 - s.regime;
        }
        let next = &REGIMES[s.regime];
        let mut pending = next.phi * r * next.sigma / regime.sigma + next.sigma * noise(rng);
        if rng.gen::<f64>() < JUMP_PROBABILITY {
            pending += JUMP_SIGMAS * next.sigma * noise(rng);
        }
        s.pending = pending;
        Quote {
            symbol: index,
            time_ms: self.time_ms,
            price: s.price,
            volume,
            spread_bps,
            regime: name,
            up: f64::from(u8::from(pending > 0.0)),
        }
    }

    /// Writes the first `events` ticks as JSON Lines (for tests and for feeding other tools).
    pub fn write_jsonl(
        &mut self,
        events: u64,
        out: &mut impl std::io::Write,
    ) -> std::io::Result<()> {
        for _ in 0..events {
            let q = self.tick();
            let line = serde_json::json!({
                "symbol": self.symbols[q.symbol].name,
                "time": q.time_ms,
                "price": q.price,
                "volume": q.volume,
                "spread_bps": q.spread_bps,
                "regime": q.regime,
                "up": q.up,
            });
            writeln!(out, "{line}")?;
        }
        Ok(())
    }
}

/// Which quote value fills a schema column.
#[derive(Clone, Copy)]
enum Column {
    Number(usize),
    Symbol,
    Regime,
    Missing,
}

pub struct QuotesSource {
    events: Option<u64>,
    tape: QuoteTape,
    names: Vec<String>,
    builder: BatchBuilder,
    numbers: Vec<Column>,
    strings: Vec<Column>,
    next: u64,
    pace: Pace,
    num_values: Vec<Option<f64>>,
}

impl QuotesSource {
    pub fn new(config: &GeneratorConfig, cx: BuildContext) -> QuotesSource {
        let schema = schema_of(&cx.builder);
        let (mut numbers, mut strings) = (Vec::new(), Vec::new());
        for field in schema.fields() {
            let name = field.name.as_str();
            match field.ty {
                FieldType::Number => numbers.push(
                    QUOTE_NUMBERS
                        .iter()
                        .position(|n| *n == name)
                        .map_or(Column::Missing, Column::Number),
                ),
                FieldType::String => strings.push(match name {
                    "symbol" => Column::Symbol,
                    "regime" => Column::Regime,
                    _ => Column::Missing,
                }),
            }
        }
        let mut tape = QuoteTape::new(config.seed, config.symbols);
        let next = cx.resume.map_or(0, |p| p.records);
        for _ in 0..next {
            tape.tick();
        }
        QuotesSource {
            events: config.events,
            names: tape.symbol_names(),
            tape,
            builder: cx.builder,
            num_values: vec![None; numbers.len()],
            numbers,
            strings,
            next,
            pace: Pace::new(config.rate_per_sec, next),
        }
    }
}

impl Source for QuotesSource {
    fn next_chunk(&mut self, max: usize) -> Result<Option<Chunk>> {
        let mut n = max as u64;
        if let Some(total) = self.events {
            n = n.min(total.saturating_sub(self.next));
        }
        n = self.pace.cap(n);
        if n == 0 {
            return Ok(None);
        }
        let mut parts = ChunkParts::new();
        let mut strings: Vec<Option<&str>> = Vec::with_capacity(self.strings.len());
        for i in self.next..self.next + n {
            let q = self.tape.tick();
            let values = [q.time_ms, q.price, q.volume, q.spread_bps, q.up];
            for (slot, column) in self.num_values.iter_mut().zip(&self.numbers) {
                *slot = match column {
                    Column::Number(j) => Some(values[*j]),
                    _ => None,
                };
            }
            strings.clear();
            strings.extend(self.strings.iter().map(|column| match column {
                Column::Symbol => Some(self.names[q.symbol].as_str()),
                Column::Regime => Some(q.regime),
                _ => None,
            }));
            push_generated(&mut self.builder, &mut parts, i, &self.num_values, &strings);
        }
        self.next += n;
        self.pace.wait(self.next);
        let end = self.position();
        Ok(Some(parts.finish(&mut self.builder, end)))
    }

    fn position(&self) -> Position {
        Position {
            records: self.next,
            location: Location::Generator,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticks(seed: u64, n: usize) -> Vec<Quote> {
        let mut tape = QuoteTape::new(seed, 20);
        (0..n).map(|_| tape.tick()).collect()
    }

    #[test]
    fn the_tape_is_fixed_by_its_seed() {
        assert_eq!(ticks(1, 5_000), ticks(1, 5_000));
        assert_ne!(ticks(1, 5_000), ticks(2, 5_000));
    }

    #[test]
    fn up_tells_whether_the_symbols_next_tick_is_higher() {
        let quotes = ticks(3, 50_000);
        let mut last: std::collections::HashMap<usize, &Quote> = Default::default();
        let mut checked = 0;
        for q in &quotes {
            if let Some(previous) = last.insert(q.symbol, q) {
                assert_eq!(
                    previous.up == 1.0,
                    q.price > previous.price,
                    "{previous:?} then {q:?}"
                );
                checked += 1;
            }
            assert!(
                q.price.is_finite() && q.price > 0.0 && q.volume >= 1.0,
                "{q:?}"
            );
        }
        assert!(checked > 49_000);
        let times: Vec<f64> = quotes.iter().map(|q| q.time_ms).collect();
        assert!(
            times.windows(2).all(|w| w[0] < w[1]),
            "the clock goes forward"
        );
    }

    #[test]
    fn regimes_differ_as_documented_and_both_occur() {
        let quotes = ticks(4, 200_000);
        let share = |name: &str| {
            quotes.iter().filter(|q| q.regime == name).count() as f64 / quotes.len() as f64
        };
        let volatile = share("volatile");
        assert!((0.1..0.4).contains(&volatile), "volatile share {volatile}");
        let mean_spread = |name: &str| {
            let s: Vec<f64> = quotes
                .iter()
                .filter(|q| q.regime == name)
                .map(|q| q.spread_bps)
                .collect();
            s.iter().sum::<f64>() / s.len() as f64
        };
        assert!(mean_spread("volatile") > 3.0 * mean_spread("calm"));
    }
}

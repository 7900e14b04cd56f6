//! Reads metric samples back out of the registry's text exposition.
//!
//! prometheus-client can only encode a registry, not list its values, and the registry holds
//! families the server never sees the types of (the pipeline's, and any a source adds, such as
//! Kafka consumer lag). Parsing the exposition reads all of them the way Prometheus would.

/// One sample line: `name{label="value",...} value`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) value: f64,
}

impl Sample {
    pub(crate) fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Every sample of an OpenMetrics/Prometheus text exposition. Comment lines are skipped, and so
/// is any line that does not parse (it cannot come from our encoder, and one odd line should not
/// blank the dashboard).
pub(crate) fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, tail) = parse_labels(after)?;
        labels = parsed;
        rest = tail;
    }
    // The value, then an optional timestamp.
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Parses `key="value",...}` and returns the labels and what follows the closing brace.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(tail) = s.strip_prefix('}') {
            return Some((labels, tail));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_owned();
        s = s[eq + 1..].strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key, value));
        s = &s[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::registry::Registry;

    use super::*;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Labels {
        topic: String,
        partition: String,
    }

    #[test]
    fn reads_back_what_the_registry_encodes() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        counter.inc_by(42);
        registry.register("things", "Things", counter);
        let lag = Family::<Labels, Gauge>::default();
        let nasty = "a\"b\\c\nd,e}=f".to_owned();
        lag.get_or_create(&Labels {
            topic: nasty.clone(),
            partition: "3".into(),
        })
        .set(-7);
        registry.register("lag", "Lag", lag);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");

        let samples = parse(&text);
        assert_eq!(samples.len(), 2, "{text}");
        assert_eq!(samples[0].name, "things_total");
        assert_eq!(samples[0].value, 42.0);
        assert_eq!(samples[1].name, "lag");
        assert_eq!(samples[1].label("topic"), Some(nasty.as_str()));
        assert_eq!(samples[1].label("partition"), Some("3"));
        assert_eq!(samples[1].value, -7.0);
    }

    #[test]
    fn special_values_and_broken_lines() {
        let samples = parse("a NaN\nb +Inf 123\nc{x=\"1\"} -Inf\nbroken{x=\"1\" 3\nd{} 2.5\n");
        assert_eq!(samples.len(), 4);
        assert!(samples[0].value.is_nan());
        assert_eq!(samples[1].value, f64::INFINITY);
        assert_eq!(samples[2].value, f64::NEG_INFINITY);
        assert_eq!(samples[3].name, "d");
        assert_eq!(samples[3].value, 2.5);
    }
}

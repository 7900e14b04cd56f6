#!/usr/bin/env python3
"""Turns the hourly temperatures shipped in the vega-datasets wheel into the weather example's
stream: one JSON record per station and hour, in event-time order.

    python3 examples/weather/prepare.py [OUT_DIR]        (default: eddy-data/weather)

Each record is {"station", "time" (RFC 3339), "temp" (degrees F), "next_temp"}: `next_temp` is
the station's reading one hour later, the label of a one-hour-ahead forecast. A replay of history
knows it; a live feed would attach it an hour late. Hours whose next reading is missing (a gap
in the file) are left out. The wheel is fetched once with pip, pinned by its hash.
"""

import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
WHEEL = "vega_datasets-0.9.0-py3-none-any.whl"
# (station, file inside the wheel, date format of that file)
STATIONS = [
    ("seattle", "vega_datasets/_data/seattle-temps.csv", "%Y/%m/%d %H:%M"),
    ("san_francisco", "vega_datasets/_data/sf-temps.csv", "%Y/%m/%d %H:%M:%S"),
]


def fetch(out_dir):
    wheel = os.path.join(out_dir, WHEEL)
    if not os.path.exists(wheel):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--require-hashes", "-r", os.path.join(HERE, "requirements.txt"), "-d", out_dir],
            check=True,
        )
    return wheel


def readings(wheel):
    """(time, station, temp) of every reading; the files hold local time, kept as labelled."""
    with zipfile.ZipFile(wheel) as z:
        for station, name, fmt in STATIONS:
            with z.open(name) as f:
                for row in csv.DictReader(io.TextIOWrapper(f, encoding="utf-8")):
                    t = datetime.strptime(row["date"], fmt).replace(tzinfo=timezone.utc)
                    yield t, station, float(row["temp"])


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join("eddy-data", "weather")
    os.makedirs(out_dir, exist_ok=True)
    by_station = {}
    for t, station, temp in readings(fetch(out_dir)):
        by_station.setdefault(station, {})[t] = temp
    records = []
    for station, series in by_station.items():
        for t, temp in series.items():
            following = series.get(t + timedelta(hours=1))
            if following is not None:
                records.append((t, station, temp, following))
    records.sort(key=lambda r: (r[0], r[1]))
    path = os.path.join(out_dir, "readings.jsonl")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        for t, station, temp, following in records:
            f.write(json.dumps({
                "station": station,
                "time": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "temp": temp,
                "next_temp": following,
            }) + "\n")
    os.replace(path + ".tmp", path)
    print(f"{path}: {len(records)} hourly readings of {len(by_station)} stations")


if __name__ == "__main__":
    main()

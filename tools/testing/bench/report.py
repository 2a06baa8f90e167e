#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn NBD benchmark measurements into a markdown report with PNG charts.

The benchmark compares three NBD clients against the same server:

  stock    the kernel's own nbd.ko
  ours     the NBD block driver under test
  fio-nbd  fio's userspace NBD engine, used as a reference ceiling

Usage: report.py RESULTS_DIR

RESULTS_DIR must contain runs.csv and may contain mem.csv:

  runs.csv  kernel,round,client,transport,conns,job,iops,bw_kib,p50_us,
            p99_us,cpu_us_per_io,srv_cpu_us_per_io
  mem.csv   kernel,round,client,metric,kib

Both files may hold rows for several kernels.  The script writes
RESULTS_DIR/README.md and, when gnuplot is available, one
<kernel>-iops.png and one <kernel>-latency.png per kernel.  Missing or
empty measurements are shown as "n/a".  Only the Python standard library
and the gnuplot executable are used.
"""

import argparse
import csv
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.parse

RUNS_FIELDS = ("kernel", "round", "client", "transport", "conns", "job",
               "iops", "bw_kib", "p50_us", "p99_us", "cpu_us_per_io",
               "srv_cpu_us_per_io")
RUNS_VALUES = RUNS_FIELDS[6:]
MEM_FIELDS = ("kernel", "round", "client", "metric", "kib")

# Display order; anything else found in the data is appended after these.
JOBS = ("randread-4k-qd1", "randread-4k-qd32", "randwrite-4k-qd32",
        "randrw-64k-qd16", "seqread-1m-qd4", "seqwrite-1m-qd4")
TRANSPORTS = {"unix": "unix socket", "tcp": "loopback TCP"}
MEM_METRICS = {
    "per_device": "KiB per device: module loaded with 32 devices, / 32",
    "per_connection": "KiB per idle connection: 16 devices connected, / 16 (4 before 2026-11-22)",
    "inflight_128": "KiB more unreclaimable slab with 4 devices × 32 "
                    "4k reads in flight",
    "per_request": "KiB per in-flight request: inflight_128 / 128",
    "pdu_bytes": "bytes: struct nbd_cmd, blk-mq's per-tag driver data "
                 "(from BTF, else the module's DWARF)",
}

# (job, reference client, minimum ours/reference IOPS ratio, description)
RATIO_TARGETS = (
    ("randread-4k-qd32", "stock", 1.3,
     "4k randread QD32, 1 conn ≥ 1.3× stock"),
    ("randread-4k-qd32", "fio-nbd", 1.0,
     "4k randread QD32, 1 conn ≥ 1.0× fio-nbd"),
    ("randwrite-4k-qd32", "stock", 1.3,
     "4k randwrite QD32, 1 conn ≥ 1.3× stock"),
    ("seqread-1m-qd4", "stock", 1.1,
     "1M seq read QD4, 1 conn ≥ 1.1× stock"),
    ("seqwrite-1m-qd4", "stock", 1.1,
     "1M seq write QD4, 1 conn ≥ 1.1× stock"),
)
LATENCY_JOBS = ("randread-4k-qd1", "randread-4k-qd32")

COLOURS = {"stock": "#7f7f7f", "ours": "#1f77b4", "fio-nbd": "#ff7f0e"}
NA = "n/a"


class ReportError(Exception):
    """A problem with the input that makes a report impossible."""


def warn(msg):
    print(f"report.py: warning: {msg}", file=sys.stderr)


def natural_key(text):
    """Sort key that orders embedded numbers numerically (6.1 < 6.12)."""
    return [int(part) if part.isdigit() else part
            for part in re.split(r"(\d+)", text)]


def ordered(values, preferred):
    """Return the set VALUES in PREFERRED order, unknown ones last."""
    known = [v for v in preferred if v in values]
    return known + sorted(set(values) - set(known), key=natural_key)


def to_float(text):
    """Parse a measurement; empty, non-numeric or non-finite gives None."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def to_int(text):
    value = to_float(text)
    return int(value) if value is not None and value == int(value) else None


def median(values):
    return statistics.median(values) if values else None


def read_csv(path, fields):
    """Read PATH as CSV, checking that the expected columns are there."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            return []
        header = [name.strip() for name in reader.fieldnames]
        missing = [name for name in fields if name not in header]
        if missing:
            raise ReportError(f"{path}: missing column(s): "
                              f"{', '.join(missing)}")
        reader.fieldnames = header
        return [{k: (v or "").strip() for k, v in row.items() if k}
                for row in reader]


class Results:
    """All measurements, indexed by cell, client and round."""

    def __init__(self, runs_rows, mem_rows):
        # (kernel, transport, conns, job, client) -> {round: {field: value}}
        self.runs = {}
        # (kernel, client, metric) -> {round: kib}
        self.mem = {}
        self.rounds = {}        # kernel -> set of rounds seen in runs.csv
        self._load_runs(runs_rows)
        self._load_mem(mem_rows)

    def _load_runs(self, rows):
        for lineno, row in enumerate(rows, start=2):
            rnd, conns = to_int(row["round"]), to_int(row["conns"])
            names = [row[k] for k in ("kernel", "client", "transport", "job")]
            if rnd is None or conns is None or not all(names):
                warn(f"runs.csv line {lineno}: incomplete key, skipped")
                continue
            kernel, client, transport, job = names
            cell = self.runs.setdefault(
                (kernel, transport, conns, job, client), {})
            if rnd in cell:
                warn(f"runs.csv line {lineno}: duplicate of round {rnd}, "
                     "the later row wins")
            cell[rnd] = {k: to_float(row[k]) for k in RUNS_VALUES}
            self.rounds.setdefault(kernel, set()).add(rnd)

    def _load_mem(self, rows):
        for lineno, row in enumerate(rows, start=2):
            rnd = to_int(row["round"])
            names = [row[k] for k in ("kernel", "client", "metric")]
            if rnd is None or not all(names):
                warn(f"mem.csv line {lineno}: incomplete key, skipped")
                continue
            self.mem.setdefault(tuple(names), {})[rnd] = to_float(row["kib"])

    # --- lookups -----------------------------------------------------------

    def kernels(self):
        names = set(self.rounds) | {key[0] for key in self.mem}
        return sorted(names, key=natural_key)

    def transports(self, kernel):
        found = {key[1] for key in self.runs if key[0] == kernel}
        return ordered(found, TRANSPORTS)

    def cells(self, kernel, transport):
        """(job, conns) pairs measured for KERNEL over TRANSPORT."""
        found = {(key[3], key[2]) for key in self.runs
                 if key[0] == kernel and key[1] == transport}
        jobs = ordered({job for job, _ in found}, JOBS)
        return [(job, conns) for job in jobs
                for conns in sorted(c for j, c in found if j == job)]

    def series(self, kernel, transport, conns, job, client, field):
        """{round: value} for one cell and client, missing values left out."""
        cell = self.runs.get((kernel, transport, conns, job, client), {})
        return {rnd: row[field] for rnd, row in cell.items()
                if row[field] is not None}

    def values(self, kernel, transport, conns, job, client, field,
               scale=1.0):
        series = self.series(kernel, transport, conns, job, client, field)
        return [series[rnd] * scale for rnd in sorted(series)]

    def median(self, *args, **kwargs):
        return median(self.values(*args, **kwargs))

    def ratios(self, kernel, transport, conns, job, client, reference):
        """Per-round IOPS ratios CLIENT/REFERENCE, in round order.

        Only rounds in which both clients were measured contribute.
        """
        num = self.series(kernel, transport, conns, job, client, "iops")
        den = self.series(kernel, transport, conns, job, reference, "iops")
        return [num[rnd] / den[rnd] for rnd in sorted(num.keys() & den.keys())
                if den[rnd] > 0]

    def mem_values(self, kernel, client, metric):
        series = self.mem.get((kernel, client, metric), {})
        return [series[rnd] for rnd in sorted(series)
                if series[rnd] is not None]

    def mem_metrics(self, kernel):
        found = {key[2] for key in self.mem if key[0] == kernel}
        return ordered(found, MEM_METRICS)


# --- number formatting -----------------------------------------------------

def fmt_int(value):
    return NA if value is None else f"{value:.0f}"


def fmt_num(value):
    """Integers for large values, one decimal under 10, two under 1."""
    if value is None:
        return NA
    if abs(value) < 0.995 and value != 0:
        return f"{value:.2f}"
    if abs(value) < 9.95:
        return f"{value:.1f}"
    return f"{value:.0f}"


def fmt_kib(value):
    return NA if value is None else f"{value:.1f}"


def fmt_unit(value, fmt, unit):
    """VALUE formatted by FMT and followed by UNIT, or just n/a."""
    return NA if value is None else f"{fmt(value)}{unit}"


def fmt_ratio(value):
    return NA if value is None else f"{value:.2f}"


def fmt_spread(values, fmt):
    """'median [min–max]' over rounds, or just the value for one round."""
    if not values:
        return NA
    text = fmt(median(values))
    low, high = fmt(min(values)), fmt(max(values))
    return text if low == high else f"{text} [{low}–{high}]"


def fmt_ratios(ratios, unit=""):
    """'median (round 1, round 2, ...)' of per-round ratios."""
    if not ratios:
        return NA
    text = fmt_ratio(median(ratios)) + unit
    if len(ratios) > 1:
        text += " (" + ", ".join(fmt_ratio(r) for r in ratios) + ")"
    return text


def fmt_pair(first, second, fmt=fmt_num):
    return f"{fmt(first)} / {fmt(second)}"


def verdict(ok):
    if ok is None:
        return NA
    return "met" if ok else "**MISSED**"


def md_table(header, rows, numeric=True):
    """A markdown table; if NUMERIC, columns after the first align right."""
    rule = " ---: " if numeric else " --- "
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join([" --- "] + [rule] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def conns_label(conns):
    return f"{conns} conn" + ("" if conns == 1 else "s")


# --- report sections -------------------------------------------------------

def transport_table(res, kernel, transport):
    header = ["job, conns", "stock IOPS", "ours IOPS", "ours/stock",
              "fio-nbd IOPS", "ours/fio-nbd", "MiB/s stock / ours",
              "p50 µs stock / ours", "p99 µs stock / ours",
              "CPU µs/IO stock / ours", "server µs/IO stock / ours"]
    rows = []
    for job, conns in res.cells(kernel, transport):
        cell = (kernel, transport, conns, job)

        def med(client, field, scale=1.0):
            return res.median(*cell, client, field, scale=scale)

        rows.append([
            f"{job}, {conns_label(conns)}",
            fmt_spread(res.values(*cell, "stock", "iops"), fmt_int),
            fmt_spread(res.values(*cell, "ours", "iops"), fmt_int),
            fmt_ratios(res.ratios(*cell, "ours", "stock")),
            fmt_int(med("fio-nbd", "iops")),
            fmt_ratio(median(res.ratios(*cell, "ours", "fio-nbd"))),
            fmt_pair(med("stock", "bw_kib", 1 / 1024),
                     med("ours", "bw_kib", 1 / 1024)),
            fmt_pair(med("stock", "p50_us"), med("ours", "p50_us")),
            fmt_pair(med("stock", "p99_us"), med("ours", "p99_us")),
            fmt_pair(med("stock", "cpu_us_per_io"),
                     med("ours", "cpu_us_per_io")),
            fmt_pair(med("stock", "srv_cpu_us_per_io"),
                     med("ours", "srv_cpu_us_per_io")),
        ])
    return md_table(header, rows) if rows else "_No measurements._"


def target_rows(res, kernel):
    """[target, measured, result] rows for one kernel."""
    rows = []
    for transport in res.transports(kernel):
        where = TRANSPORTS.get(transport, transport)

        for job, reference, minimum, text in RATIO_TARGETS:
            ratios = res.ratios(kernel, transport, 1, job, "ours", reference)
            ok = median(ratios) >= minimum if ratios else None
            rows.append([f"{text} ({where})", fmt_ratios(ratios, "×"),
                         verdict(ok)])

        cell = (kernel, transport, 1, "randread-4k-qd1")
        ours = res.median(*cell, "ours", "p50_us")
        stock = res.median(*cell, "stock", "p50_us")
        ok = None if ours is None or stock is None else ours <= stock
        rows.append([f"4k randread QD1 p50 ≤ stock ({where})",
                     f"ours {fmt_unit(ours, fmt_num, ' µs')}, "
                     f"stock {fmt_unit(stock, fmt_num, ' µs')}",
                     verdict(ok)])

        scaling = {}
        for client in ("ours", "stock"):
            one, four = (res.median(kernel, transport, conns,
                                    "randread-4k-qd32", client, "iops")
                         for conns in (1, 4))
            scaling[client] = None
            if one and four is not None:
                scaling[client] = four / one
        ok = None
        if None not in scaling.values():
            ok = scaling["ours"] >= scaling["stock"]
        rows.append([f"scaling 1→4 conns ≥ stock's, 4k randread QD32 "
                     f"({where})",
                     f"ours {fmt_unit(scaling['ours'], fmt_ratio, '×')}, "
                     f"stock {fmt_unit(scaling['stock'], fmt_ratio, '×')}",
                     verdict(ok)])

    for metric, unit, what in (("per_request", " KiB", "measured"),
                               ("pdu_bytes", " bytes", "static")):
        ours = median(res.mem_values(kernel, "ours", metric))
        stock = median(res.mem_values(kernel, "stock", metric))
        ok = None if ours is None or stock is None else ours <= stock
        rows.append([f"memory per in-flight request ≤ stock ({what}, "
                     f"`{metric}`)",
                     f"ours {fmt_unit(ours, fmt_kib, unit)}, "
                     f"stock {fmt_unit(stock, fmt_kib, unit)}",
                     verdict(ok)])
    return rows


def memory_table(res, kernel):
    rows = []
    for metric in res.mem_metrics(kernel):
        name = f"`{metric}`"
        if metric in MEM_METRICS:
            name += f" ({MEM_METRICS[metric]})"
        rows.append([name] + [fmt_spread(res.mem_values(kernel, c, metric),
                                         fmt_kib)
                              for c in ("stock", "ours")])
    if not rows:
        return "_No memory measurements._"
    return md_table(["metric", "stock", "ours"], rows)


def round_summary(res):
    counts = {k: len(res.rounds.get(k, ())) for k in res.kernels()}
    distinct = set(counts.values())
    if len(distinct) == 1:
        n = distinct.pop()
        return f"{n} per kernel"
    return ", ".join(
        f"{k}: {n}" for k, n in counts.items())


INTRO = """\
# NBD benchmark results

Three NBD clients were measured against the same server: the kernel's
stock `nbd.ko` (**stock**), the driver under test (**ours**) and fio's
userspace NBD engine (**fio-nbd**, a reference ceiling).  Each kernel was
measured in one VM boot under QEMU TCG (software emulation), so absolute
figures are far below real hardware; the comparison between clients
within a kernel is what matters.

Figures are medians over rounds, followed by the range over rounds as
[min–max].  The ours/stock ratio is computed per round from the same
round's runs (ours IOPS / stock IOPS); the table shows the median of those
ratios followed by the per-round ratios in parentheses.  Latencies are
completion latencies.  "CPU µs/IO" is guest CPU time busy per I/O for the
whole VM, "server µs/IO" the NBD server process's share of it.  "n/a"
marks a value that was not measured.

Rounds found: {rounds}.  Kernels: {kernels}.
"""


def kernel_section(res, kernel, charts):
    rounds = sorted(res.rounds.get(kernel, ()))
    out = [f"## Kernel {kernel}", ""]
    out += [f"Rounds: {', '.join(map(str, rounds)) or 'none'}.", ""]
    transports = res.transports(kernel)
    for transport in transports:
        out += [f"### {TRANSPORTS.get(transport, transport)}", "",
                transport_table(res, kernel, transport), ""]
    if not transports:
        out += ["_No runs.csv measurements for this kernel._", ""]
    out += ["### Targets", "",
            md_table(["target", "measured", "result"],
                     target_rows(res, kernel), numeric=False), ""]
    out += ["### Memory", "", memory_table(res, kernel), ""]
    if charts:
        out += ["### Charts", ""]
        for title, filename in charts:
            out += [f"![{title}]({urllib.parse.quote(filename)})", ""]
    return out


def write_report(res, path, charts):
    kernels = res.kernels()
    text = INTRO.format(rounds=round_summary(res),
                        kernels=", ".join(f"`{k}`" for k in kernels))
    lines = [text]
    for kernel in kernels:
        lines += kernel_section(res, kernel, charts.get(kernel, []))
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines).rstrip("\n") + "\n")


# --- charts ----------------------------------------------------------------

def gp_string(text):
    """Quote TEXT as a gnuplot single-quoted string."""
    return "'" + text.replace("'", "''") + "'"


def gp_value(value):
    return "NaN" if value is None else f"{value:.6g}"


def find_terminal(gnuplot):
    """Prefer pngcairo, fall back to the libgd png terminal."""
    for terminal in ("pngcairo", "png"):
        probe = subprocess.run([gnuplot, "-e", f"set terminal {terminal}"],
                               capture_output=True, check=False)
        if probe.returncode == 0:
            return terminal
    return None


def run_gnuplot(gnuplot, script, data):
    """Run SCRIPT with its data in a temporary file; True on success.

    SCRIPT refers to the data file as {data}.
    """
    with tempfile.TemporaryDirectory(prefix="nbd-report-") as tmp:
        data_path = os.path.join(tmp, "data.dat")
        script_path = os.path.join(tmp, "plot.gp")
        with open(data_path, "w", encoding="utf-8") as f:
            f.write(data)
        with open(script_path, "w", encoding="utf-8") as f:
            f.write(script.replace("{data}", gp_string(data_path)))
        proc = subprocess.run([gnuplot, script_path], capture_output=True,
                              text=True, check=False)
    if proc.returncode != 0:
        warn(f"gnuplot failed: {proc.stderr.strip()}")
        return False
    return True


def data_rows(rows):
    """Tab-separated gnuplot data; the first column is a quoted label."""
    return "".join('"' + label.replace('"', "'") + '"\t' +
                   "\t".join(gp_value(v) for v in values) + "\n"
                   for label, values in rows)


def chart_header(terminal, output, width, height):
    return (f"set terminal {terminal} size {width},{height} noenhanced\n"
            f"set output {gp_string(output)}\n"
            "set encoding utf8\n"
            "set style data histograms\n"
            "set style histogram clustered gap 1\n"
            "set style fill solid 0.85 border -1\n"
            "set boxwidth 0.9\n"
            "set xtics rotate by 45 right nomirror\n"
            "set grid ytics\n"
            "set key above horizontal\n"
            "set yrange [0:*]\n")


def iops_chart(res, kernel, gnuplot, terminal, output):
    rows = []
    boundaries = []         # x positions between transports
    for transport in res.transports(kernel):
        if rows:
            boundaries.append(len(rows) - 0.5)
        for job, conns in res.cells(kernel, transport):
            cell = (kernel, transport, conns, job)
            rows.append((f"{job} {conns}c {transport}",
                         [median(res.ratios(*cell, client, "stock"))
                          for client in ("ours", "fio-nbd")]))
    if not any(v is not None for _, values in rows for v in values):
        return False
    title = (f"IOPS relative to stock nbd.ko, kernel {kernel} "
             "(median of per-round ratios)")
    script = chart_header(terminal, output, 1400, 600)
    script += (
        f"set title {gp_string(title)}\n"
        "set ylabel 'IOPS / stock IOPS'\n"
        "set bmargin 11\nset lmargin 16\n")
    for x in boundaries:
        script += f"set arrow from {x}, graph 0 to {x}, graph 1 nohead\n"
    # gnuplot refuses a histogram column without a single point
    terms = [f"{{data}} using {col}:xtic(1) title '{client}' "
             f"lc rgb '{COLOURS[client]}'"
             for col, client in ((2, "ours"), (3, "fio-nbd"))
             if any(values[col - 2] is not None for _, values in rows)]
    terms.append("1 with lines dt 2 lw 2 "
                 f"lc rgb '{COLOURS['stock']}' title 'stock = 1.0'")
    script += "plot " + ", \\\n     ".join(terms) + "\n"
    return run_gnuplot(gnuplot, script, data_rows(rows))


def latency_chart(res, kernel, gnuplot, terminal, output):
    panels = {}
    for field in ("p50_us", "p99_us"):
        panels[field] = [
            (f"{job.replace('randread-', 'rr-')} {conns}c {transport}",
             [res.median(kernel, transport, conns, job, client, field)
              for client in ("stock", "ours")])
            for transport in res.transports(kernel)
            for job, conns in res.cells(kernel, transport)
            if job in LATENCY_JOBS]
    if not any(v is not None for rows in panels.values()
               for _, values in rows for v in values):
        return False
    data = "\n\n".join(data_rows(panels[f]) for f in ("p50_us", "p99_us"))
    title = f"4k random read completion latency, kernel {kernel}"
    script = chart_header(terminal, output, 1200, 550)
    script += ("set bmargin 8\nset ylabel 'µs'\n"
               f"set multiplot layout 1,2 title {gp_string(title)}\n")
    for index, name in enumerate(("p50", "p99")):
        script += (
            f"set title '{name} (median)'\n"
            f"plot {{data}} index {index} using 2:xtic(1) title 'stock' "
            f"lc rgb '{COLOURS['stock']}', \\\n"
            f"     '' index {index} using 3 title 'ours' "
            f"lc rgb '{COLOURS['ours']}'\n")
    script += "unset multiplot\n"
    return run_gnuplot(gnuplot, script, data)


def make_charts(res, results_dir):
    """Draw the charts; returns {kernel: [(title, file name)]}."""
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        warn("gnuplot not found, writing the report without charts")
        return {}
    terminal = find_terminal(gnuplot)
    if terminal is None:
        warn("gnuplot has neither the pngcairo nor the png terminal, "
             "writing the report without charts")
        return {}
    charts = {}
    for kernel in res.kernels():
        stem = re.sub(r"[^A-Za-z0-9._+-]", "_", kernel)
        for suffix, title, draw in (
                ("iops", "IOPS relative to stock", iops_chart),
                ("latency", "4k random read latency", latency_chart)):
            filename = f"{stem}-{suffix}.png"
            output = os.path.join(results_dir, filename)
            if draw(res, kernel, gnuplot, terminal, output):
                charts.setdefault(kernel, []).append(
                    (f"{title}, kernel {kernel}", filename))
    return charts


# --- main --------------------------------------------------------------------

def load(results_dir):
    if not os.path.isdir(results_dir):
        raise ReportError(f"{results_dir}: not a directory")
    runs_path = os.path.join(results_dir, "runs.csv")
    if not os.path.isfile(runs_path):
        raise ReportError(f"{runs_path}: not found")
    runs_rows = read_csv(runs_path, RUNS_FIELDS)
    if not runs_rows:
        raise ReportError(f"{runs_path}: no measurement rows")
    mem_path = os.path.join(results_dir, "mem.csv")
    mem_rows = []
    if os.path.isfile(mem_path):
        mem_rows = read_csv(mem_path, MEM_FIELDS)
    else:
        warn(f"{mem_path} not found, memory figures will be n/a")
    res = Results(runs_rows, mem_rows)
    if not res.rounds:
        raise ReportError(f"{runs_path}: no usable measurement rows")
    return res


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Write RESULTS_DIR/README.md and PNG charts from "
                    "RESULTS_DIR/runs.csv and RESULTS_DIR/mem.csv.")
    parser.add_argument("results_dir", metavar="RESULTS_DIR",
                        help="directory holding runs.csv and mem.csv")
    args = parser.parse_args(argv)

    try:
        res = load(args.results_dir)
    except (ReportError, OSError, csv.Error) as err:
        print(f"report.py: error: {err}", file=sys.stderr)
        return 1

    charts = make_charts(res, args.results_dir)
    report = os.path.join(args.results_dir, "README.md")
    write_report(res, report, charts)
    print(f"wrote {report}")
    for kernel in res.kernels():
        for _, filename in charts.get(kernel, []):
            print(f"wrote {os.path.join(args.results_dir, filename)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

//! Encode and decode of every column codec of `sextant_engine::encoding`, on columns cut
//! from the workload generators into blocks of 16,384 values (the engine's default
//! `block_rows`), laid out as a segment stores them: metric columns sorted by series then
//! time. The compression ratio (raw bytes over encoded bytes) is printed once per codec.

use std::ops::Range;

use arrow_buffer::BooleanBuffer;
use criterion::{BenchmarkId, Criterion, Throughput};
use sextant_bench::workload::cpu::{CpuConfig, CpuGenerator, CpuVariant};
use sextant_bench::workload::logs::{LogsConfig, LogsGenerator};
use sextant_engine::encoding::{self, Options};

/// Values per block: the engine's default `block_rows`.
const BLOCK: usize = 16_384;
/// cpu hosts (series) and days of the numeric columns: 8 x 8,640 = 69,120 values.
const HOSTS: u32 = 8;
/// Log events of the log columns (at 10,000 per second).
const EVENTS: usize = 65_536;
/// The seed of all the data.
const SEED: u64 = 42;

/// One column kind: how to encode a range of its values and decode a block back.
trait Column {
    fn len(&self) -> usize;
    /// Bytes of the values uncompressed (8 per number, 1 per level, 1 bit per bool, the
    /// string bytes plus a 4-byte offset each).
    fn raw_bytes(&self) -> usize;
    fn encode(&self, range: Range<usize>, opts: &Options, out: &mut Vec<u8>);
    /// Decodes one block; returns the number of values, for `black_box`.
    fn decode(&self, block: &[u8], count: usize) -> usize;
}

struct Times(Vec<i64>);
struct Ints(Vec<i64>);
struct Floats(Vec<f64>);
struct Strings {
    offsets: Vec<i32>,
    data: Vec<u8>,
}
struct Bools(BooleanBuffer);
struct Bytes(Vec<u8>);

impl Column for Times {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn raw_bytes(&self) -> usize {
        self.0.len() * 8
    }
    fn encode(&self, r: Range<usize>, opts: &Options, out: &mut Vec<u8>) {
        encoding::encode_time(&self.0[r], opts, out);
    }
    fn decode(&self, block: &[u8], count: usize) -> usize {
        encoding::decode_time(block, count).expect("valid").len()
    }
}

impl Column for Ints {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn raw_bytes(&self) -> usize {
        self.0.len() * 8
    }
    fn encode(&self, r: Range<usize>, opts: &Options, out: &mut Vec<u8>) {
        encoding::encode_i64(&self.0[r], opts, out);
    }
    fn decode(&self, block: &[u8], count: usize) -> usize {
        encoding::decode_i64(block, count).expect("valid").len()
    }
}

impl Column for Floats {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn raw_bytes(&self) -> usize {
        self.0.len() * 8
    }
    fn encode(&self, r: Range<usize>, opts: &Options, out: &mut Vec<u8>) {
        encoding::encode_f64(&self.0[r], opts, out);
    }
    fn decode(&self, block: &[u8], count: usize) -> usize {
        encoding::decode_f64(block, count).expect("valid").len()
    }
}

impl Column for Strings {
    fn len(&self) -> usize {
        self.offsets.len() - 1
    }
    fn raw_bytes(&self) -> usize {
        self.data.len() + 4 * self.len()
    }
    fn encode(&self, r: Range<usize>, opts: &Options, out: &mut Vec<u8>) {
        encoding::encode_strings(&self.offsets[r.start..=r.end], &self.data, opts, out);
    }
    fn decode(&self, block: &[u8], count: usize) -> usize {
        encoding::decode_strings(block, count)
            .expect("valid")
            .1
            .len()
    }
}

impl Column for Bools {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn raw_bytes(&self) -> usize {
        self.0.len().div_ceil(8)
    }
    fn encode(&self, r: Range<usize>, opts: &Options, out: &mut Vec<u8>) {
        encoding::encode_bool(&self.0.slice(r.start, r.len()), opts, out);
    }
    fn decode(&self, block: &[u8], count: usize) -> usize {
        encoding::decode_bool(block, count)
            .expect("valid")
            .count_set_bits()
    }
}

impl Column for Bytes {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn raw_bytes(&self) -> usize {
        self.0.len()
    }
    fn encode(&self, r: Range<usize>, opts: &Options, out: &mut Vec<u8>) {
        encoding::encode_u8(&self.0[r], opts, out);
    }
    fn decode(&self, block: &[u8], count: usize) -> usize {
        encoding::decode_u8(block, count).expect("valid").len()
    }
}

/// The blocks' value ranges.
fn blocks(len: usize) -> Vec<Range<usize>> {
    (0..len)
        .step_by(BLOCK)
        .map(|s| s..(s + BLOCK).min(len))
        .collect()
}

/// Encodes every block of `column`; returns the bytes and each block's (bytes, count).
fn encode_all(column: &dyn Column, opts: &Options) -> (Vec<u8>, Vec<(Range<usize>, usize)>) {
    let mut out = Vec::new();
    let mut spans = Vec::new();
    for r in blocks(column.len()) {
        let start = out.len();
        let count = r.len();
        column.encode(r, opts, &mut out);
        spans.push((start..out.len(), count));
    }
    (out, spans)
}

fn bench_column(c: &mut Criterion, name: &str, column: &dyn Column) {
    let opts = Options::default();
    let (encoded, spans) = encode_all(column, &opts);
    let values = column.len();
    let raw = column.raw_bytes();
    println!(
        "codec/{name}: {values} values in {} blocks, {raw} raw bytes -> {} encoded: ratio {:.2}, {:.3} bytes/value",
        spans.len(),
        encoded.len(),
        raw as f64 / encoded.len() as f64,
        encoded.len() as f64 / values as f64,
    );
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::ElementsAndBytes {
        elements: values as u64,
        bytes: raw as u64,
    });
    let mut out = Vec::with_capacity(encoded.len() * 2);
    group.bench_function(BenchmarkId::new("encode", name), |b| {
        b.iter(|| {
            out.clear();
            for r in blocks(column.len()) {
                column.encode(r, &opts, &mut out);
            }
            std::hint::black_box(out.len())
        })
    });
    group.bench_function(BenchmarkId::new("decode", name), |b| {
        b.iter(|| {
            let mut n = 0;
            for (span, count) in &spans {
                n += column.decode(&encoded[span.clone()], *count);
            }
            std::hint::black_box(n)
        })
    });
    group.finish();
}

/// The time column and usage_user of `HOSTS` hosts for one day, sorted by host then time.
fn cpu_series(variant: CpuVariant) -> (Vec<i64>, Vec<f64>) {
    let config = CpuConfig::new(HOSTS, 1.0)
        .with_seed(SEED)
        .with_variant(variant);
    let mut per_host = vec![(Vec::new(), Vec::new()); HOSTS as usize];
    for batch in CpuGenerator::new(config).expect("valid").batches(65_536) {
        for i in 0..batch.len() {
            let (t, v) = &mut per_host[batch.host[i] as usize];
            t.push(batch.time[i]);
            v.push(batch.fields[0][i]);
        }
    }
    per_host
        .into_iter()
        .fold((Vec::new(), Vec::new()), |(mut t, mut v), (ht, hv)| {
            t.extend(ht);
            v.extend(hv);
            (t, v)
        })
}

/// Strings in Arrow's layout.
fn strings<'a>(values: impl Iterator<Item = &'a str>) -> Strings {
    let mut offsets = vec![0i32];
    let mut data = Vec::new();
    for v in values {
        data.extend_from_slice(v.as_bytes());
        offsets.push(data.len() as i32);
    }
    Strings { offsets, data }
}

pub fn bench(c: &mut Criterion) {
    let (time, usage) = cpu_series(CpuVariant::CpuOnly);
    let (_, noisy) = cpu_series(CpuVariant::NoisyFloats);
    let ints: Vec<i64> = usage.iter().map(|&v| v as i64).collect();

    let mut logs = LogsGenerator::new(LogsConfig::new(10_000, 1.0).with_seed(SEED)).expect("valid");
    let services = logs.tags().services.clone();
    let batch = logs.next_batch(EVENTS).expect("events");
    let messages = strings((0..batch.len()).map(|i| batch.message(i)));
    let service = strings(batch.service.iter().map(|&s| services[s as usize].as_str()));
    let present = Bools(BooleanBuffer::from_iter(
        batch.duration_ms.iter().map(Option::is_some),
    ));
    let levels = Bytes(batch.level.iter().map(|&l| l as u8).collect());

    bench_column(c, "time", &Times(time));
    bench_column(c, "integral-floats", &Floats(usage));
    bench_column(c, "noisy-floats", &Floats(noisy));
    bench_column(c, "ints", &Ints(ints));
    bench_column(c, "strings-messages", &messages);
    bench_column(c, "strings-dictionary", &service);
    bench_column(c, "bools", &present);
    bench_column(c, "levels", &levels);
}

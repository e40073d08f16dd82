use arrow_array::{Array, Float64Array, StringArray, TimestampNanosecondArray};

use super::*;

fn all_rows(config: CpuConfig, rows_per_batch: usize) -> (Vec<CpuHost>, CpuBatch) {
    let generator = CpuGenerator::new(config).unwrap();
    let hosts = generator.hosts().to_vec();
    let mut all = CpuBatch::default();
    for batch in generator.batches(rows_per_batch) {
        all.time.extend(&batch.time);
        all.host.extend(&batch.host);
        for (a, b) in all.fields.iter_mut().zip(&batch.fields) {
            a.extend(b);
        }
    }
    (hosts, all)
}

#[test]
fn same_seed_gives_identical_rows_and_other_seeds_differ() {
    let config = CpuConfig::new(20, 0.05).with_seed(42);
    let (hosts_a, a) = all_rows(config.clone(), 1000);
    let (hosts_b, b) = all_rows(config.clone(), 1000);
    assert_eq!(hosts_a, hosts_b);
    assert_eq!(a, b);
    let (hosts_c, c) = all_rows(config.with_seed(43), 1000);
    assert_ne!(hosts_a, hosts_c);
    assert_ne!(a.fields, c.fields);
}

#[test]
fn batch_size_does_not_change_the_rows() {
    let config = CpuConfig::new(13, 0.02).with_variant(CpuVariant::NoisyFloats);
    let (_, whole) = all_rows(config.clone(), 1 << 20);
    let (_, small) = all_rows(config.clone(), 7);
    let (_, one) = all_rows(config, 1);
    assert_eq!(whole, small);
    assert_eq!(whole, one);
}

#[test]
fn host_rows_are_the_time_major_rows_of_that_host() {
    for variant in [CpuVariant::CpuOnly, CpuVariant::NoisyFloats] {
        let config = CpuConfig::new(11, 0.02).with_variant(variant).with_seed(5);
        let (_, all) = all_rows(config.clone(), 1000);
        let generator = CpuGenerator::new(config).unwrap();
        for host in [0, 7, 10] {
            let mut expected = CpuBatch::default();
            for i in (0..all.len()).filter(|&i| all.host[i] == host) {
                expected.time.push(all.time[i]);
                expected.host.push(host);
                for (e, a) in expected.fields.iter_mut().zip(&all.fields) {
                    e.push(a[i]);
                }
            }
            assert_eq!(
                generator.host_rows(host),
                expected,
                "{variant:?} host {host}"
            );
        }
    }
}

#[test]
fn row_count_is_scale_times_epochs_in_time_major_order() {
    let config = CpuConfig::new(7, 0.01); // 864 s: 86 epochs
    assert_eq!(config.epochs(), 86);
    assert_eq!(config.rows(), 602);
    assert_eq!(CpuConfig::new(4000, 3.0).rows(), 103_680_000);
    assert_eq!(CpuConfig::new(1, 1.0).epochs(), 8_640);
    let generator = CpuGenerator::new(config.clone()).unwrap();
    let batches: Vec<_> = generator.batches(100).collect();
    assert_eq!(batches.len(), 7);
    assert!(batches[..6].iter().all(|b| b.len() == 100));
    let (_, rows) = all_rows(config, 100);
    assert_eq!(rows.len(), 602);
    for (i, (&time, &host)) in rows.time.iter().zip(&rows.host).enumerate() {
        assert_eq!(host as usize, i % 7);
        assert_eq!(time, REFERENCE_START_NS + (i / 7) as i64 * INTERVAL_NS);
    }
}

#[test]
fn empty_ranges_and_zero_hosts_are_rejected() {
    assert!(CpuGenerator::new(CpuConfig::new(0, 1.0)).is_err());
    assert!(CpuGenerator::new(CpuConfig::new(10, 0.0)).is_err());
    let mut short = CpuConfig::new(10, 1.0);
    short.end_ns = short.start_ns + INTERVAL_NS - 1;
    assert!(CpuGenerator::new(short).is_err());
}

#[test]
fn tags_are_fixed_per_host_and_datacenter_is_in_its_region() {
    let a = CpuGenerator::new(CpuConfig::new(1000, 0.01)).unwrap();
    let b = CpuGenerator::new(CpuConfig::new(2000, 3.0)).unwrap();
    // A host's tags depend only on the seed and its index, not on scale or time range.
    assert_eq!(a.hosts(), &b.hosts()[..1000]);
    let mut regions = std::collections::BTreeSet::new();
    for (i, host) in a.hosts().iter().enumerate() {
        assert_eq!(host.hostname, format!("host_{i}"));
        let (_, zones) = REGIONS.iter().find(|(r, _)| *r == host.region).unwrap();
        assert!(zones.contains(&host.datacenter), "{host:?}");
        assert!(host.rack.parse::<u32>().unwrap() < 100);
        assert!(host.service.parse::<u32>().unwrap() < 20);
        assert!(matches!(host.service_version.as_str(), "0" | "1"));
        regions.insert(host.region);
    }
    assert_eq!(regions.len(), 9);
}

#[test]
fn cpu_only_values_are_integral_and_within_0_to_100() {
    let (_, rows) = all_rows(CpuConfig::new(50, 0.2), 4096);
    for column in &rows.fields {
        assert!(
            column
                .iter()
                .all(|v| (0.0..=100.0).contains(v) && v.fract() == 0.0)
        );
    }
    // Every value from 0 to 100 shows up somewhere, so the walk does reach both bounds.
    let mut seen = [false; 101];
    rows.fields
        .iter()
        .flatten()
        .for_each(|&v| seen[v as usize] = true);
    assert!(seen.iter().all(|&s| s));
}

#[test]
fn noisy_float_values_are_not_integral_and_steps_are_standard_normal() {
    let config = CpuConfig::new(50, 0.2).with_variant(CpuVariant::NoisyFloats);
    let (_, rows) = all_rows(config, 4096);
    let values = rows.fields.iter().flatten();
    let integral = values.clone().filter(|v| v.fract() == 0.0).count();
    assert!(values.clone().all(|v| (0.0..=100.0).contains(v)));
    // Only values clamped to exactly 0 or 100 are integral: the walk sits on a bound about
    // 0.6 % of the time at each end (Gaussian overshoot), so 1 to 2 % in all.
    assert!(
        values
            .clone()
            .filter(|v| v.fract() == 0.0)
            .all(|&v| v == 0.0 || v == 100.0)
    );
    assert!(
        integral * 40 < rows.len() * FIELD_COUNT,
        "{integral} integral values"
    );
    // The mean absolute step of a Normal(0, 1) walk is sqrt(2 / pi) = 0.798.
    let (mut sum, mut n) = (0.0, 0);
    for column in &rows.fields {
        for i in 50..column.len() {
            let (prev, cur) = (column[i - 50], column[i]);
            if prev > 5.0 && prev < 95.0 {
                sum += (cur - prev).abs();
                n += 1;
            }
        }
    }
    let mean_step = sum / f64::from(n);
    assert!((mean_step - 0.798).abs() < 0.02, "mean |step| {mean_step}");
}

#[test]
fn about_9_percent_of_rows_have_usage_user_above_90() {
    let (_, rows) = all_rows(CpuConfig::new(100, 1.0), 1 << 16);
    assert_eq!(rows.len(), 864_000);
    let high = rows.fields[0].iter().filter(|&&v| v > 90.0).count();
    let share = high as f64 / rows.len() as f64;
    assert!(
        (0.06..=0.12).contains(&share),
        "usage_user > 90 share {share}"
    );
}

#[test]
fn record_batch_carries_tags_with_roles_and_the_values() {
    let mut generator = CpuGenerator::new(CpuConfig::new(3, 0.01)).unwrap();
    let batch = generator.next_batch(5).unwrap();
    let rb = batch.to_record_batch(generator.hosts()).unwrap();
    assert_eq!(rb.num_rows(), 5);
    assert_eq!(rb.schema(), schema());
    let schema = rb.schema();
    for tag in TAGS {
        let field = schema.field_with_name(tag).unwrap();
        assert_eq!(
            field.metadata().get(ROLE_KEY).map(String::as_str),
            Some("tag")
        );
    }
    assert!(
        schema
            .field_with_name("usage_user")
            .unwrap()
            .metadata()
            .is_empty()
    );
    let time = rb
        .column(0)
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .unwrap();
    assert_eq!(time.value(4), REFERENCE_START_NS + INTERVAL_NS);
    assert_eq!(time.timezone(), Some("UTC"));
    let hostname = rb.column(1).as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(hostname.value(4), "host_1");
    let dc = rb.column(3).as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(dc.value(1), generator.hosts()[1].datacenter);
    let guest_nice = rb
        .column(20)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    assert_eq!(guest_nice.values(), &batch.fields[9][..]);
    assert_eq!(guest_nice.null_count(), 0);
}

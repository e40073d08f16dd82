use arrow_array::{Array, Float64Array, StringArray};

use super::*;

/// One hour at `eps` events per second.
fn hour(eps: u32) -> LogsConfig {
    let mut config = LogsConfig::new(eps, 1.0);
    config.end_ns = config.start_ns + 3600 * NANOS_PER_SECOND;
    config
}

fn all_events(config: LogsConfig, rows_per_batch: usize) -> LogBatch {
    let mut all = LogBatch::default();
    for b in LogsGenerator::new(config).unwrap().batches(rows_per_batch) {
        let base = all.message_data.len();
        all.time.extend(&b.time);
        all.service.extend(&b.service);
        all.host.extend(&b.host);
        all.level.extend(&b.level);
        all.message_data.push_str(&b.message_data);
        all.message_ends
            .extend(b.message_ends.iter().map(|e| e + base));
        all.trace_id.extend(&b.trace_id);
        all.duration_ms.extend(&b.duration_ms);
    }
    all
}

#[test]
fn same_seed_gives_identical_events_and_other_seeds_differ() {
    let mut config = hour(20);
    config.end_ns = config.start_ns + 120 * NANOS_PER_SECOND;
    let a = all_events(config.clone(), 1000);
    assert_eq!(a, all_events(config.clone(), 1000));
    let b = all_events(config.with_seed(2), 1000);
    assert_ne!(a.message_data, b.message_data);
    assert_ne!(a.time, b.time);
}

#[test]
fn batch_size_and_range_start_do_not_change_the_events() {
    let mut config = hour(50);
    config.end_ns = config.start_ns + 20 * NANOS_PER_SECOND;
    let whole = all_events(config.clone(), 100_000);
    assert_eq!(whole, all_events(config.clone(), 7));
    // The last 10 seconds generated on their own are the same events.
    let mut tail = config.clone();
    tail.start_ns += 10 * NANOS_PER_SECOND;
    let tail = all_events(tail, 64);
    assert_eq!(tail.time, whole.time[500..]);
    assert_eq!(tail.message(0), whole.message(500));
}

#[test]
fn row_count_is_rate_times_seconds_and_times_are_ordered_within_range() {
    let config = hour(30);
    assert_eq!(config.rows(), 108_000);
    assert_eq!(LogsConfig::new(10_000, 1.0).rows(), 864_000_000);
    let events = all_events(config.clone(), 4096);
    assert_eq!(events.len(), 108_000);
    assert!(events.time.windows(2).all(|w| w[0] <= w[1]));
    assert!(events.time[0] >= config.start_ns && *events.time.last().unwrap() < config.end_ns);
    // Exactly 30 events in each second, at varied sub-second offsets.
    for sec in events.time.chunks(30) {
        assert_eq!(sec[0] / NANOS_PER_SECOND, sec[29] / NANOS_PER_SECOND);
    }
    let whole_seconds = events
        .time
        .iter()
        .filter(|&&t| t % NANOS_PER_SECOND == 0)
        .count();
    assert!(whole_seconds < 5);
}

#[test]
fn invalid_configurations_are_rejected() {
    let mut config = hour(10);
    config.start_ns += 1;
    assert!(LogsGenerator::new(config).is_err());
    assert!(LogsGenerator::new(LogsConfig::new(0, 1.0)).is_err());
    assert!(LogsGenerator::new(LogsConfig::new(10, 0.0)).is_err());
    let mut config = hour(10);
    config.services = 0;
    assert!(LogsGenerator::new(config).is_err());
}

#[test]
fn level_shares_match_the_workload_outside_incidents() {
    let config = hour(100);
    let generator = LogsGenerator::new(config.clone()).unwrap();
    let incidents = generator.incidents();
    let events = all_events(config, 8192);
    let mut counts = [0usize; 6];
    let mut n = 0;
    for i in 0..events.len() {
        let t = events.time[i];
        let s = events.service[i];
        if incidents
            .iter()
            .any(|x| x.service == s && x.start_ns <= t && t < x.end_ns)
        {
            continue;
        }
        counts[events.level[i] as usize] += 1;
        n += 1;
    }
    assert!(n > 300_000);
    for (level, (&count, share)) in Level::ALL.iter().zip(counts.iter().zip(Level::SHARES)) {
        let got = count as f64 / n as f64;
        // Binomial standard error at n = 360k is at most 0.0008.
        assert!(
            (got - share).abs() < 0.004 + share * 0.05,
            "{level}: {got} vs {share}"
        );
    }
}

#[test]
fn incidents_raise_their_services_error_share_to_30_percent() {
    let day = LogsConfig::new(100, 1.0);
    let incidents = LogsGenerator::new(day.clone()).unwrap().incidents();
    assert_eq!(incidents.len(), 6);
    let services: std::collections::BTreeSet<_> = incidents.iter().map(|i| i.service).collect();
    assert_eq!(services.len(), 3);
    for i in &incidents {
        let minutes = (i.end_ns - i.start_ns) / (60 * NANOS_PER_SECOND);
        assert!((1..=5).contains(&minutes) && i.start_ns % (60 * NANOS_PER_SECOND) == 0);
    }
    // Generate the incident windows alone (events do not depend on the range).
    let (mut errors, mut total) = (0usize, 0usize);
    for incident in &incidents {
        let mut window = day.clone();
        window.start_ns = incident.start_ns;
        window.end_ns = incident.end_ns;
        let events = all_events(window, 8192);
        for i in 0..events.len() {
            if events.service[i] == incident.service {
                total += 1;
                errors += usize::from(events.level[i] == Level::Error);
            }
        }
    }
    let share = errors as f64 / total as f64;
    assert!(total > 1000, "{total} incident events");
    assert!(
        (share - INCIDENT_ERROR_SHARE).abs() < 0.04,
        "incident error share {share}"
    );
}

#[test]
fn tags_are_consistent_and_env_is_fixed_per_host() {
    let config = hour(50);
    let generator = LogsGenerator::new(config.clone()).unwrap();
    let tags = generator.tags().clone();
    assert_eq!(tags.services.len(), 20);
    assert_eq!(tags.hosts.len(), 100);
    assert!(tags.hosts.iter().any(|h| h.env == "staging"));
    assert!(tags.hosts.iter().filter(|h| h.env == "production").count() > 60);
    let events = all_events(config, 4096);
    for i in 0..events.len() {
        let s = events.service[i] as usize;
        assert!(tags.service_hosts[s].contains(&events.host[i]));
    }
    // Service popularity is skewed (Zipf), but every service logs.
    let mut per_service = vec![0usize; 20];
    events
        .service
        .iter()
        .for_each(|&s| per_service[s as usize] += 1);
    assert!(
        per_service[0] > 4 * per_service[19] && per_service[19] > 0,
        "{per_service:?}"
    );
}

#[test]
fn messages_are_40_to_200_bytes_from_about_200_templates() {
    let config = hour(20);
    assert_eq!(
        LogsGenerator::new(config.clone()).unwrap().template_count(),
        200
    );
    let events = all_events(config, 4096);
    let mut distinct_prefixes = std::collections::BTreeSet::new();
    for i in 0..events.len() {
        let m = events.message(i);
        assert!(
            (MIN_MESSAGE_LEN..=MAX_MESSAGE_LEN).contains(&m.len()),
            "{m:?}"
        );
        distinct_prefixes.insert(m.split(' ').take(2).collect::<Vec<_>>().join(" "));
    }
    assert!(distinct_prefixes.len() > 100);
}

#[test]
fn traces_repeat_and_about_half_the_events_have_a_duration() {
    let events = all_events(hour(100), 4096);
    let with = events.duration_ms.iter().flatten().count() as f64 / events.len() as f64;
    assert!((with - 0.5).abs() < 0.01, "duration share {with}");
    let mut durations: Vec<f64> = events.duration_ms.iter().flatten().copied().collect();
    durations.sort_by(f64::total_cmp);
    let median = durations[durations.len() / 2];
    assert!((10.0..14.0).contains(&median), "median duration {median}");
    assert!(
        durations
            .iter()
            .all(|&d| d > 0.0 && ((d * 1000.0).round() - d * 1000.0).abs() < 1e-6)
    );
    let distinct: std::collections::HashSet<_> = events.trace_id.iter().collect();
    let per_trace = events.len() as f64 / distinct.len() as f64;
    assert!(
        (1.5..3.0).contains(&per_trace),
        "{per_trace} events per trace"
    );
}

#[test]
fn record_batch_has_roles_hex_trace_ids_and_null_durations() {
    let mut generator = LogsGenerator::new(hour(10)).unwrap();
    let batch = generator.next_batch(200).unwrap();
    let rb = batch.to_record_batch(generator.tags()).unwrap();
    assert_eq!(rb.schema(), schema());
    let schema = rb.schema();
    for tag in TAGS {
        assert_eq!(
            schema.field_with_name(tag).unwrap().metadata()[ROLE_KEY],
            "tag"
        );
    }
    assert_eq!(
        schema.field_with_name("level").unwrap().metadata()[ROLE_KEY],
        "level"
    );
    let level = rb.column(4).as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(level.value(7), batch.level[7].as_str());
    let trace = rb.column(6).as_any().downcast_ref::<StringArray>().unwrap();
    assert!((0..200).all(|i| trace.value(i).len() == 32));
    assert_eq!(trace.value(3), trace_id_hex(&batch.trace_id[3]));
    let env = rb.column(3).as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(
        env.value(5),
        generator.tags().hosts[batch.host[5] as usize].env
    );
    let duration = rb
        .column(7)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    assert_eq!(
        duration.null_count(),
        batch.duration_ms.iter().filter(|d| d.is_none()).count()
    );
    assert!(duration.null_count() > 50 && duration.null_count() < 150);
}

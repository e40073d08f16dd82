//! The instances' state machine against a model: each instance stepped on its own by the
//! rules as Prometheus states them, over random evaluation times, `for`,
//! `keep_firing_for` and instances coming and going.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use sextant_alerts::state::{Instances, Labels, Sample, Transition};

const MIN: i64 = 60_000_000_000;

/// One instance as the model sees it.
#[derive(Debug, Clone, Copy)]
enum Model {
    Pending { since: i64 },
    Firing { absent_since: Option<i64> },
}

fn sample(host: usize) -> Sample {
    Sample {
        labels: Labels::from([
            ("alertname".to_string(), "r".to_string()),
            ("host".to_string(), format!("h{host}")),
        ]),
        value: Some(host as f64),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn instances_step_as_the_model_does(
        for_min in 0i64..4,
        keep_min in 0i64..3,
        steps in prop::collection::vec((1i64..4, prop::collection::vec(any::<bool>(), 4)), 1..40),
    ) {
        let (for_, keep) = (for_min * MIN, keep_min * MIN);
        let mut instances = Instances::default();
        let mut model: BTreeMap<usize, Model> = BTreeMap::new();
        let mut t = 0;
        for (gap, present) in steps {
            t += gap * MIN;
            let samples: Vec<Sample> =
                (0..4).filter(|&h| present[h]).map(sample).collect();
            let changes = instances
                .step(
                    samples,
                    t,
                    Duration::from_nanos(for_ as u64),
                    Duration::from_nanos(keep as u64),
                )
                .unwrap();
            let got: BTreeMap<String, Transition> = changes
                .iter()
                .map(|c| (c.instance.labels["host"].clone(), c.transition))
                .collect();
            prop_assert_eq!(got.len(), changes.len(), "one change per instance");

            let mut want = BTreeMap::new();
            for (h, &is_present) in present.iter().enumerate() {
                let name = format!("h{h}");
                let next = match (model.get(&h).copied(), is_present) {
                    (None, true) if for_ == 0 => {
                        want.insert(name, Transition::Firing);
                        Some(Model::Firing { absent_since: None })
                    }
                    (None, true) => {
                        want.insert(name, Transition::Pending);
                        Some(Model::Pending { since: t })
                    }
                    (None, false) => None,
                    (Some(Model::Pending { since }), true) if t - since >= for_ => {
                        want.insert(name, Transition::Firing);
                        Some(Model::Firing { absent_since: None })
                    }
                    (Some(m @ Model::Pending { .. }), true) => Some(m),
                    (Some(Model::Pending { .. }), false) => {
                        want.insert(name, Transition::Cleared);
                        None
                    }
                    (Some(Model::Firing { .. }), true) => Some(Model::Firing { absent_since: None }),
                    (Some(Model::Firing { absent_since }), false) => {
                        let since = absent_since.unwrap_or(t);
                        if keep == 0 || t - since >= keep {
                            want.insert(name, Transition::Resolved);
                            None
                        } else {
                            Some(Model::Firing { absent_since: Some(since) })
                        }
                    }
                };
                match next {
                    Some(m) => model.insert(h, m),
                    None => model.remove(&h),
                };
            }
            prop_assert_eq!(&got, &want, "at {} min", t / MIN);
            prop_assert_eq!(instances.len(), model.len());
        }
    }
}

use super::*;

/// Every configuration a device with these abilities can run.
fn can(f16: bool, max_invocations: u32) -> Vec<Config> {
    candidates(Abilities {
        f16,
        max_invocations,
    })
}

fn key(size: (usize, usize), engine: &str) -> TuneKey {
    TuneKey {
        adapter: "GPU".into(),
        driver: "d 1".into(),
        backend: "Vulkan".into(),
        engine: engine.into(),
        size,
    }
}

#[test]
fn names_round_trip() {
    for c in can(true, 256) {
        assert_eq!(Config::parse(&c.name()), Some(c), "{}", c.name());
    }
    assert_eq!(Config::parse("fused f16 128x64"), None);
    assert_eq!(Config::parse("fused f64 64x64"), None);
    assert_eq!(Config::parse(""), None);
}

#[test]
fn impossible_candidates_are_never_tried() {
    let all = can(true, 256);
    assert_eq!(all.len(), 10);
    let small = can(false, 128);
    assert_eq!(small.len(), 3);
    assert!(
        small
            .iter()
            .all(|c| c.precision == Precision::F32 && c.threads <= 128)
    );
    let mut tried = Vec::new();
    let _ = choose(&small, 2, |c| {
        tried.push(c);
        Ok(1.0)
    });
    // Every possible one, in interleaved rounds.
    assert_eq!(tried, [small.clone(), small].concat());
}

#[test]
fn the_fastest_candidate_wins_and_failures_are_passed_over() {
    let all = can(true, 256);
    // A fake clock: each configuration's time is known.
    let clock = |c: Config| -> Result<f64, String> {
        match (c.fused, c.precision, c.threads, c.tile_pixels) {
            (false, Precision::F32, ..) => Ok(752.0),
            (true, Precision::F16, 256, 32) => Err("out of memory".into()),
            (true, Precision::F32, 64, 64) => Ok(700.0),
            _ => Ok(900.0 + c.threads as f64),
        }
    };
    let (trials, best) = choose(&all, 3, clock);
    assert_eq!(trials.len(), all.len());
    assert_eq!(best.map(|c| c.name()).as_deref(), Some("fused f32 64x64"));
    assert!(trials.iter().any(|t| t.ms.is_err()));
    let (_, none) = choose(&all, 3, |_| Err("no".into()));
    assert_eq!(none, None);
    // The median of the rounds: one slow round (other work on the device) does not
    // decide; a candidate failing in a later round is out.
    let mut round = 0;
    let (trials, best) = choose(&all[..2], 3, |c| {
        round += 1;
        match (c.fused, round) {
            (false, 1) => Ok(50.0),
            (false, _) => Ok(10.0),
            (true, 4) => Err("lost".into()),
            (true, _) => Ok(20.0),
        }
    });
    assert_eq!(best, Some(all[0]));
    assert_eq!(trials[0].ms, Ok(10.0));
    assert_eq!(trials[1].ms, Err("lost".into()));
}

#[test]
fn trials_one_candidate_at_a_time_pick_as_interleaved_ones_do() {
    let all = can(false, 256);
    let clock = |c: Config| -> Result<f64, String> {
        match (c.fused, c.threads, c.tile_pixels) {
            (false, ..) => Ok(438.0),
            (true, 256, 32) => Err("out of memory".into()),
            (true, t, p) => Ok(500.0 + (t + p) as f64),
        }
    };
    let mut t = Trials::one_by_one(&all, 3);
    let mut order = Vec::new();
    while let Some(c) = t.next() {
        order.push(c);
        t.record(clock(c));
    }
    // Each candidate three times in a row; the failed one once, then passed over.
    let want: Vec<Config> = all
        .iter()
        .flat_map(|&c| {
            let n = if c.threads == 256 && c.tile_pixels == 32 {
                1
            } else {
                3
            };
            std::iter::repeat_n(c, n)
        })
        .collect();
    assert_eq!(order, want);
    assert_eq!(t.progress(), (15, 15));
    assert_eq!(t.next_other(), None);
    let fresh = Trials::one_by_one(&all, 3);
    assert_eq!(fresh.next_other(), Some(all[1]));
    let (trials, best) = t.result();
    assert_eq!(best, choose(&all, 3, clock).1);
    assert_eq!(best.map(|c| c.name()).as_deref(), Some("unfused f32"));
    assert_eq!(trials.iter().filter(|t| t.ms.is_err()).count(), 1);
    // Nothing recorded yet: no choice, and every candidate says so.
    let (trials, best) = Trials::one_by_one(&all, 3).result();
    assert_eq!(best, None);
    assert!(trials.iter().all(|t| t.ms.is_err()));
}

#[test]
fn leads_first_passes_over_families_far_slower_than_the_fastest() {
    let all = can(true, 256);
    let name = |c: &Config| c.name();
    let run = |clock: &dyn Fn(Config) -> Result<f64, String>| {
        let mut t = Trials::leads_first(&all, 3, (64, 64), 2.0);
        let mut order = Vec::new();
        while let Some(c) = t.next() {
            if order.last() != Some(&c) {
                order.push(c);
            }
            t.record(clock(c));
        }
        (order, t)
    };
    // As SwiftShader measured: fused 3.6 times one op per dispatch, and f16 cannot run.
    let swiftshader = |c: Config| -> Result<f64, String> {
        match (c.fused, c.precision, c.threads, c.tile_pixels) {
            (_, Precision::F16, ..) => Err("no shader-f16".into()),
            (false, ..) => Ok(447.0),
            (true, _, 64, 64) => Ok(1602.0),
            (true, _, 64, 32) => Ok(1658.0),
            (true, _, t, p) => Ok(2000.0 + (t + p) as f64),
        }
    };
    let (order, t) = run(&swiftshader);
    // The four leads first, one op per dispatch and the running shape; then nothing more.
    assert_eq!(
        order.iter().map(name).collect::<Vec<_>>(),
        [
            "unfused f32",
            "fused f32 64x64",
            "unfused f16",
            "fused f16 64x64"
        ]
    );
    let (trials, best) = t.result();
    assert_eq!(best.map(|c| c.name()).as_deref(), Some("unfused f32"));
    assert_eq!(trials.len(), all.len(), "every candidate has a row");
    for tr in &trials {
        let why = tr.ms.as_ref().err().map(String::as_str).unwrap_or("");
        match (
            tr.config.fused,
            tr.config.precision,
            tr.config.threads,
            tr.config.tile_pixels,
        ) {
            (false, Precision::F32, ..) | (true, Precision::F32, 64, 64) => {
                assert!(tr.ms.is_ok())
            }
            (true, Precision::F32, ..) => assert_eq!(
                why,
                "passed over: fused f32 64x64 took 1602.0 ms, over 2 times the fastest (447.0 ms)"
            ),
            (true, Precision::F16, 64, 64) | (false, ..) => assert_eq!(why, "no shader-f16"),
            (true, Precision::F16, ..) => {
                assert_eq!(why, "passed over: fused f16 64x64 could not run")
            }
        }
    }
    assert_eq!(t.progress().0, t.progress().1, "all done");
    // As lavapipe measured: fused within 1.3 times of one op per dispatch, so every shape
    // is timed, and a shape faster than the lead wins.
    let lavapipe = |c: Config| -> Result<f64, String> {
        match (c.fused, c.precision, c.threads, c.tile_pixels) {
            (false, Precision::F32, ..) => Ok(752.0),
            (false, Precision::F16, ..) => Ok(900.0),
            (true, _, 64, 64) => Ok(922.0),
            (true, Precision::F32, 64, 32) => Ok(700.0),
            (true, _, t, p) => Ok(1000.0 + (t + p) as f64),
        }
    };
    let (order, t) = run(&lavapipe);
    assert_eq!(order.len(), all.len(), "every candidate timed");
    assert!(
        order[..4]
            .iter()
            .all(|c| !c.fused || (c.threads, c.tile_pixels) == (64, 64))
    );
    let (trials, best) = t.result();
    assert!(trials.iter().all(|t| t.ms.is_ok()));
    assert_eq!(best.map(|c| c.name()).as_deref(), Some("fused f32 64x32"));
    assert_eq!(
        best,
        choose(&all, 3, lavapipe).1,
        "the same pick as timing all"
    );
    // What is prepared meanwhile never reaches past the leads: it may be passed over.
    let mut t = Trials::leads_first(&all, 3, (64, 64), 2.0);
    for _ in 0..9 {
        t.record(Ok(1.0));
    }
    assert_eq!(
        t.next().map(|c| c.name()).as_deref(),
        Some("fused f16 64x64")
    );
    assert_eq!(t.next_other(), None);
    // A running shape the device cannot have: the family's first member leads.
    let small = can(false, 64);
    let t = Trials::leads_first(&small, 1, (256, 64), 2.0);
    assert_eq!(
        t.next_other().map(|c| c.name()).as_deref(),
        Some("fused f32 64x32")
    );
}

#[test]
fn the_cache_is_keyed_by_device_size_and_engine() {
    let mut cache = TuneCache::default();
    let unfused = Config::parse("unfused f32").unwrap();
    let fused = Config::parse("fused f16 256x32").unwrap();
    cache.insert(key((480, 360), "1 a"), unfused, 752.0);
    cache.insert(key((240, 176), "1 a"), fused, 200.0);
    assert_eq!(cache.get(&key((480, 360), "1 a")), Some((unfused, 752.0)));
    assert_eq!(cache.get(&key((240, 176), "1 a")), Some((fused, 200.0)));
    assert_eq!(cache.get(&key((640, 360), "1 a")), None);
    assert_eq!(
        cache.latest_for_device(&key((640, 360), "1 a")),
        Some(fused)
    );
    let mut other = key((480, 360), "1 a");
    other.driver = "d 2".into();
    assert_eq!(cache.get(&other), None, "a new driver tunes again");
    assert_eq!(cache.latest_for_device(&other), None);
    // A new engine build forgets the old one's entries for that adapter.
    cache.insert(key((480, 360), "2 b"), fused, 600.0);
    assert_eq!(cache.get(&key((480, 360), "1 a")), None);
    assert_eq!(cache.get(&key((240, 176), "1 a")), None);
    assert_eq!(cache.get(&key((480, 360), "2 b")), Some((fused, 600.0)));
    // Stored and read back.
    let (back, note) = TuneCache::parse(&cache.to_json());
    assert_eq!((back, note), (cache, None));
}

#[test]
fn a_damaged_cache_is_ignored_with_a_note() {
    for text in ["", "{", "[1, 2]", "{\"entries\": 3}", "\u{0}garbage"] {
        let (cache, note) = TuneCache::parse(text);
        assert_eq!(cache, TuneCache::default(), "{text:?}");
        assert!(note.unwrap().starts_with("ignored"), "{text:?}");
    }
    // An entry whose configuration this build does not know is no choice.
    let (cache, _) = TuneCache::parse(
        r#"{"entries": [{"key": {"adapter": "GPU", "driver": "d 1", "backend": "Vulkan",
            "engine": "1 a", "size": [480, 360]}, "config": "fused f16 100x7", "ms": 1.0}]}"#,
    );
    assert_eq!(cache.get(&key((480, 360), "1 a")), None);
}

//! Adaptive network size for live video: when frames take longer than the camera's frame
//! time the network's shorter side steps down, and back up when there is room. A pure
//! controller fed with measured frame times, so its rules are tested without a GPU; the page
//! ([`crate::web`]) feeds it the time from each submission to the GPU's answer.

/// How long frame times are collected before a decision (ms), and how many at least.
const WINDOW_MS: f64 = 1000.0;
const MIN_SAMPLES: usize = 5;
/// A step up is taken only if the next size, its cost estimated by its pixels, would use at
/// most this share of the frame time: room for noise without see-sawing.
const UP_MARGIN: f64 = 0.7;
/// After a step down the size left stays out of reach this long (ms): a size that was too
/// slow is not retried at once.
const BLOCK_MS: f64 = 10_000.0;
const SAMPLES: usize = 64;

#[derive(Clone, Debug)]
pub struct AdaptiveSize {
    /// Shorter sides, ascending.
    steps: Vec<usize>,
    index: usize,
    target_ms: f64,
    samples: [f64; SAMPLES],
    count: usize,
    window_start: Option<f64>,
    /// The step stepped down from, and until when it is out of reach.
    blocked: Option<(usize, f64)>,
    /// The largest shorter side the source allows ([`AdaptiveSize::set_ceiling`]).
    ceiling: usize,
}

impl AdaptiveSize {
    /// `steps`: the shorter sides to choose from (any order, not empty); starts at the largest
    /// not above `start`. `target_ms`: the frame time to stay within.
    pub fn new(steps: &[usize], start: usize, target_ms: f64) -> AdaptiveSize {
        let mut steps = steps.to_vec();
        steps.sort_unstable();
        steps.dedup();
        assert!(!steps.is_empty(), "adaptive size needs at least one size");
        let index = steps.iter().rposition(|&s| s <= start).unwrap_or(0);
        AdaptiveSize {
            steps,
            index,
            target_ms,
            samples: [0.0; SAMPLES],
            count: 0,
            window_start: None,
            blocked: None,
            ceiling: usize::MAX,
        }
    }

    /// The source's own shorter side: no step above it is taken (a larger network adds no
    /// information); a step above it now is left at once for the largest not above it (the
    /// smallest step when none is). Returns the new shorter side when the size changes.
    pub fn set_ceiling(&mut self, max_side: usize) -> Option<usize> {
        self.ceiling = max_side;
        if self.steps[self.index] <= max_side {
            return None;
        }
        self.index = self.steps.iter().rposition(|&s| s <= max_side).unwrap_or(0);
        self.restart();
        Some(self.short_side())
    }

    pub fn short_side(&self) -> usize {
        self.steps[self.index]
    }

    pub fn target_ms(&self) -> f64 {
        self.target_ms
    }

    /// A new frame time to stay within (a camera with another frame rate); the measurements
    /// so far are dropped.
    pub fn set_target_ms(&mut self, ms: f64) {
        if ms.is_finite() && ms > 0.0 {
            self.target_ms = ms;
            self.restart();
        }
    }

    fn restart(&mut self) {
        self.count = 0;
        self.window_start = None;
    }

    /// One frame took `frame_ms`, finishing at `now_ms` (any monotonic clock). Returns the new
    /// shorter side when the size changes.
    pub fn observe(&mut self, frame_ms: f64, now_ms: f64) -> Option<usize> {
        if !frame_ms.is_finite() || frame_ms < 0.0 {
            return None;
        }
        let start = *self.window_start.get_or_insert(now_ms);
        if self.count < SAMPLES {
            self.samples[self.count] = frame_ms;
            self.count += 1;
        }
        if now_ms - start < WINDOW_MS || self.count < MIN_SAMPLES {
            return None;
        }
        let window = &mut self.samples[..self.count];
        window.sort_unstable_by(f64::total_cmp);
        let median = window[window.len() / 2];
        self.restart();
        if median > self.target_ms && self.index > 0 {
            self.blocked = Some((self.index, now_ms + BLOCK_MS));
            self.index -= 1;
            return Some(self.short_side());
        }
        let up = self.index + 1;
        if up < self.steps.len() && self.steps[up] <= self.ceiling {
            let blocked = matches!(self.blocked, Some((b, until)) if b == up && now_ms < until);
            let ratio = self.steps[up] as f64 / self.steps[self.index] as f64;
            if !blocked && median * ratio * ratio <= UP_MARGIN * self.target_ms {
                self.index = up;
                return Some(self.short_side());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEPS: [usize; 5] = [96, 192, 240, 360, 480];

    /// Feeds frames whose time follows `cost(short side)` at 30 per second for `seconds`,
    /// starting at `t`; returns the time reached.
    fn run(a: &mut AdaptiveSize, t: f64, seconds: f64, cost: impl Fn(usize) -> f64) -> f64 {
        let mut t = t;
        let end = t + seconds * 1000.0;
        while t < end {
            t += 1000.0 / 30.0;
            a.observe(cost(a.short_side()), t);
        }
        t
    }

    #[test]
    fn never_above_the_sources_own_size() {
        let mut a = AdaptiveSize::new(&STEPS, 360, 33.3);
        assert_eq!(a.set_ceiling(240), Some(240));
        assert_eq!(a.set_ceiling(240), None);
        // However fast the frames, no step above the source.
        let t = run(&mut a, 0.0, 10.0, |_| 1.0);
        assert_eq!(a.short_side(), 240);
        // A larger source lets it go on up.
        assert_eq!(a.set_ceiling(720), None);
        run(&mut a, t, 10.0, |_| 1.0);
        assert_eq!(a.short_side(), 480);
        // Below the smallest step: the smallest.
        assert_eq!(a.set_ceiling(48), Some(96));
    }

    #[test]
    fn starts_at_the_largest_step_not_above_the_request() {
        assert_eq!(AdaptiveSize::new(&STEPS, 360, 33.0).short_side(), 360);
        assert_eq!(AdaptiveSize::new(&STEPS, 300, 33.0).short_side(), 240);
        assert_eq!(AdaptiveSize::new(&STEPS, 10, 33.0).short_side(), 96);
    }

    #[test]
    fn steps_down_until_frames_fit_and_stays_there() {
        // Cost grows with the pixels: 360 takes 60 ms, 240 takes ~27 ms.
        let cost = |s: usize| 60.0 * (s as f64 / 360.0).powi(2);
        let mut a = AdaptiveSize::new(&STEPS, 480, 33.3);
        let t = run(&mut a, 0.0, 5.0, cost);
        assert_eq!(a.short_side(), 240);
        // 360 would not fit: it is not retried, however long it runs.
        run(&mut a, t, 60.0, cost);
        assert_eq!(a.short_side(), 240);
    }

    #[test]
    fn steps_up_when_there_is_room_without_see_sawing() {
        let cost = |s: usize| 8.0 * (s as f64 / 360.0).powi(2);
        let mut a = AdaptiveSize::new(&STEPS, 96, 33.3);
        let t = run(&mut a, 0.0, 10.0, cost);
        assert_eq!(a.short_side(), 480);
        // A heavier scene (or a hotter phone) later: it steps down again, and back up only
        // when the load goes away.
        let t = run(&mut a, t, 5.0, |s| 4.0 * cost(s));
        assert!(a.short_side() < 480, "{}", a.short_side());
        let low = a.short_side();
        let t = run(&mut a, t, 5.0, |s| 4.0 * cost(s));
        assert_eq!(a.short_side(), low, "steady under a steady load");
        run(&mut a, t, 30.0, cost);
        assert_eq!(a.short_side(), 480);
    }

    #[test]
    fn one_slow_frame_is_not_a_trend() {
        let mut a = AdaptiveSize::new(&STEPS, 360, 33.3);
        let mut t = 0.0;
        for i in 0..120 {
            t += 33.3;
            let ms = if i % 10 == 0 { 200.0 } else { 20.0 };
            assert_eq!(a.observe(ms, t), None, "frame {i}");
        }
        assert_eq!(a.short_side(), 360);
    }

    #[test]
    fn ignores_nonsense_times() {
        let mut a = AdaptiveSize::new(&STEPS, 360, 33.3);
        for i in 0..100 {
            assert_eq!(a.observe(f64::NAN, i as f64 * 33.0), None);
            assert_eq!(a.observe(-1.0, i as f64 * 33.0), None);
        }
        a.set_target_ms(0.0);
        assert_eq!(a.target_ms(), 33.3);
    }
}

//! Aligned closed GOPs: segment boundaries are decided here, on source timestamps: the
//! first frame at or after every multiple of `segment_secs` (pts-based, so variable frame
//! rate input is cut on time, not on frame counts). That frame is sent to every encoder as a
//! forced IDR picture, so all rungs have keyframes at exactly the same pts and nowhere else.
//! In remux mode the boundaries are the source keyframes at or after those multiples.
//! Durations are computed from the boundary timestamps, so segment `i` has the same duration
//! on every track. Also the time-base arithmetic the stages share.

use super::*;

/// Timestamps in ticks of `tb` → milliseconds, rounded to nearest.
pub(super) fn to_ms(ts: i64, tb: Rational) -> i64 {
    let num = i128::from(ts) * i128::from(tb.numerator()) * 1000;
    let den = i128::from(tb.denominator().max(1));
    let q = if num >= 0 {
        (num + den / 2) / den
    } else {
        (num - den / 2) / den
    };
    i64::try_from(q).unwrap_or(0)
}

pub(super) fn secs(ts: i64, tb: Rational) -> f64 {
    ts as f64 * f64::from(tb)
}

/// Is `delta` ticks of `tb` at least `k × seg` seconds?
pub(super) fn reached(delta: i64, tb: Rational, k: i64, seg: u32) -> bool {
    i128::from(delta) * i128::from(tb.numerator())
        >= i128::from(k) * i128::from(seg) * i128::from(tb.denominator())
}

/// The smallest k with `k × seg` seconds strictly after `delta` ticks.
pub(super) fn next_k(delta: i64, tb: Rational, seg: u32) -> i64 {
    let q = i128::from(delta.max(0)) * i128::from(tb.numerator())
        / (i128::from(seg) * i128::from(tb.denominator().max(1)));
    i64::try_from(q).unwrap_or(i64::MAX - 1) + 1
}

/// Segment boundaries shared by every track: `cuts[0]` is the start, `cuts[i]` the first
/// timestamp of segment `i`, `end` the end of the last frame (all in ticks of `tb`).
pub(super) struct Timeline {
    pub(super) tb: Rational,
    pub(super) cuts: Vec<i64>,
    pub(super) end: i64,
    pub(super) next_k: i64,
}

impl Timeline {
    pub(super) fn new(tb: Rational) -> Self {
        Self {
            tb,
            cuts: Vec::new(),
            end: i64::MIN,
            next_k: 1,
        }
    }

    /// Records a frame or packet at `pts` that may start a segment (`candidate`); returns
    /// whether it does.
    pub(super) fn offer(&mut self, pts: i64, candidate: bool, seg: u32) -> bool {
        let Some(&start) = self.cuts.first() else {
            if candidate {
                self.cuts.push(pts);
            }
            return candidate;
        };
        let delta = pts - start;
        if candidate
            && pts > *self.cuts.last().unwrap_or(&start)
            && reached(delta, self.tb, self.next_k, seg)
        {
            self.cuts.push(pts);
            self.next_k = next_k(delta, self.tb, seg);
            return true;
        }
        false
    }

    pub(super) fn extend(&mut self, end: i64) {
        self.end = self.end.max(end);
    }

    /// Duration of segment `i` in ms, once its end is known (`last` for the final segment).
    pub(super) fn duration_ms(&self, i: usize, last: bool) -> Option<u32> {
        let start = *self.cuts.get(i)?;
        let end = match self.cuts.get(i + 1) {
            Some(e) => *e,
            None if last => self.end.max(start),
            None => return None,
        };
        let ms = to_ms(end, self.tb) - to_ms(start, self.tb);
        Some(u32::try_from(ms.max(1)).unwrap_or(u32::MAX))
    }
}

pub(super) trait RescaleTo {
    fn rescale_to(self, from: Rational, to: Rational) -> i64;
}

impl RescaleTo for i64 {
    fn rescale_to(self, from: Rational, to: Rational) -> i64 {
        ff::Rescale::rescale(&self, from, to)
    }
}

//! How ingest progress is shown: one redrawn line with a bar on a terminal, a structured log
//! line every few seconds otherwise.

use super::job::{IngestProgress, JobState};

fn clock(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// One terminal line: `[#####-----]  45% downloaded | 00:01:23 / 00:02:00 | 3.2x | ETA 00:00:11 | 20 segments`.
pub fn bar_line(p: &IngestProgress) -> String {
    let fraction = match (p.duration_s, p.total_bytes) {
        (Some(d), _) if d > 0.0 => (p.position_s / d).clamp(0.0, 1.0),
        _ => 0.0,
    };
    let width = 24;
    let filled = (fraction * width as f64).round() as usize;
    let mut line = format!(
        "[{}{}] {:>3.0}%",
        "#".repeat(filled),
        "-".repeat(width - filled),
        fraction * 100.0
    );
    if p.total_bytes > 0 {
        line.push_str(&format!(
            " | downloaded {:>3.0}%",
            p.downloaded_bytes as f64 * 100.0 / p.total_bytes as f64
        ));
    }
    line.push_str(&format!(" | {}", clock(p.position_s)));
    if let Some(d) = p.duration_s {
        line.push_str(&format!(" / {}", clock(d)));
    }
    line.push_str(&format!(" | {:.1}x", p.speed_x));
    if let Some(eta) = p.eta_s {
        line.push_str(&format!(" | ETA {}", clock(eta)));
    }
    line.push_str(&format!(" | {} segments | {:?}", p.segments, p.state));
    line
}

/// Logs progress as structured fields.
pub fn log(p: &IngestProgress) {
    tracing::info!(
        state = ?p.state,
        movie = p.movie_id.as_deref().unwrap_or(""),
        position_s = p.position_s,
        duration_s = p.duration_s.unwrap_or(0.0),
        downloaded_bytes = p.downloaded_bytes,
        total_bytes = p.total_bytes,
        speed_x = p.speed_x,
        eta_s = p.eta_s.unwrap_or(0.0),
        segments = p.segments,
        "ingest progress"
    );
}

/// Whether a job has ended.
pub fn finished(p: &IngestProgress) -> bool {
    matches!(p.state, JobState::Done | JobState::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_shows_fraction_speed_and_eta() {
        let p = IngestProgress {
            position_s: 30.0,
            duration_s: Some(120.0),
            speed_x: 3.0,
            eta_s: Some(30.0),
            downloaded_bytes: 50,
            total_bytes: 100,
            segments: 7,
            ..IngestProgress::default()
        };
        let line = bar_line(&p);
        assert!(
            line.starts_with("[######------------------]  25%"),
            "{line}"
        );
        assert!(
            line.contains("downloaded  50%")
                && line.contains("3.0x")
                && line.contains("ETA 00:00:30"),
            "{line}"
        );
    }
}

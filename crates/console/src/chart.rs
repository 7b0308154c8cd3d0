//! The hits-over-time chart: an inline SVG bar chart drawn on the server.
//!
//! No chart library and no script: a few dozen `<rect>`s with a `<title>` each (the browser
//! shows it as a tooltip and screen readers read it), scaled to the largest bucket. Labels
//! are the page's own text, escaped by the template like every other value.

/// One bar.
pub struct Bar {
    /// x, y, width, height in the SVG's 600×160 viewBox.
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    /// Tooltip: the bucket's start and its count.
    pub title: String,
}

/// A drawn chart: the bars, the largest count (the axis label) and tick labels.
pub struct Chart {
    pub bars: Vec<Bar>,
    pub max: u64,
    pub first: String,
    pub last: String,
}

/// Width and height of the drawing area.
const W: f32 = 600.0;
const H: f32 = 150.0;

/// Lays out one bar per `(label, count)`.
pub fn bars(buckets: &[(String, u64)]) -> Chart {
    let max = buckets.iter().map(|(_, c)| *c).max().unwrap_or(0);
    let n = buckets.len().max(1) as f32;
    let slot = W / n;
    let bars = buckets
        .iter()
        .enumerate()
        .map(|(i, (label, count))| {
            let h = if max == 0 {
                0.0
            } else {
                (*count as f32 / max as f32) * H
            };
            Bar {
                x: i as f32 * slot + slot * 0.1,
                y: H - h + 5.0,
                w: slot * 0.8,
                h,
                title: format!("{label}: {count}"),
            }
        })
        .collect();
    Chart {
        bars,
        max,
        first: buckets.first().map(|b| b.0.clone()).unwrap_or_default(),
        last: buckets.last().map(|b| b.0.clone()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_bucket_fills_the_height() {
        let c = bars(&[("a".into(), 0), ("b".into(), 5), ("c".into(), 10)]);
        assert_eq!(c.max, 10);
        assert_eq!(c.bars[2].h, H);
        assert_eq!(c.bars[0].h, 0.0);
        assert_eq!(c.bars[1].title, "b: 5");
    }
}

//! Markers from `noise.events`: preset loads (labelled with their preset)
//! across the lanes, notes as ticks in their own lane, other events as
//! small ticks; drawn on the timeline and the scrub bar, one mark per pixel
//! column at most.

use egui::{Align2, Color32, FontId, Mesh, Painter, Pos2, Rect, Stroke};

use crate::session::Session;
use crate::Topic;

/// Most markers taken from one session (the rest are counted, not drawn).
pub const MAX_MARKERS: usize = 200_000;

/// The preset-load colour (not one of the actor legend's).
pub const PRESET_COLOR: Color32 = Color32::from_rgb(0xF2, 0x6D, 0x6D);
/// The note-tick colour.
pub const NOTE_COLOR: Color32 = Color32::from_rgb(0xC8, 0xC8, 0x8C);

/// What a marker marks.
#[derive(Debug, Clone, PartialEq)]
pub enum MarkerKind {
    /// A `preset_load`, with its preset's name.
    Preset(String),
    /// A `note_on` (or `note_off`).
    Note,
    /// Another event type.
    Other(String),
}

/// One event of `noise.events`.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// Envelope time.
    pub ts_ms: i64,
    /// What it is.
    pub kind: MarkerKind,
    /// Its fields in words (`note=60 velocity=100`).
    pub detail: String,
}

impl Marker {
    /// A marker for an event of type `event_type` with its extra fields.
    pub fn from_event(ts_ms: i64, event_type: &str, extra: &[(String, crate::RawValue)]) -> Marker {
        let detail = describe_fields(extra);
        let kind = match event_type {
            "preset_load" => {
                let name = extra
                    .iter()
                    .find(|(k, _)| k == "preset" || k == "name")
                    .and_then(|(_, v)| match v.decode() {
                        Ok(rmpv::Value::String(s)) => s.as_str().map(str::to_owned),
                        Ok(v) => Some(v.to_string()),
                        Err(_) => None,
                    })
                    .unwrap_or_else(|| "preset".to_owned());
                MarkerKind::Preset(name)
            }
            "note_on" | "note_off" | "note" => MarkerKind::Note,
            other => MarkerKind::Other(other.to_owned()),
        };
        Marker {
            ts_ms,
            kind,
            detail,
        }
    }

    /// The marker's own text size (for the live history's budget).
    pub fn text_bytes(&self) -> usize {
        self.detail.len()
            + match &self.kind {
                MarkerKind::Preset(s) | MarkerKind::Other(s) => s.len(),
                MarkerKind::Note => 0,
            }
    }

    /// One line for a tooltip.
    pub fn describe(&self) -> String {
        match &self.kind {
            MarkerKind::Preset(p) => format!("preset_load {p}"),
            MarkerKind::Note => format!("note {}", self.detail),
            MarkerKind::Other(t) => format!("{t} {}", self.detail),
        }
    }
}

/// The markers of a loaded session, in time order: every `noise.events`
/// record, read back from the file for its fields (on the loader thread).
/// Records that cannot be read back are skipped.
pub fn session_markers(session: &Session) -> Vec<Marker> {
    let mut out = Vec::new();
    for e in session.events() {
        if session.topic_of(e) != Some(Topic::Events) {
            continue;
        }
        if out.len() >= MAX_MARKERS {
            break;
        }
        let Ok(env) = session.envelope(e) else {
            continue;
        };
        if let crate::Body::Event { event_type } = &env.body {
            out.push(Marker::from_event(e.ts_ms, event_type, &env.extra));
        }
    }
    out.sort_by_key(|m| m.ts_ms);
    out
}

/// An event's own fields in words: `note=60 velocity=100`.
pub fn describe_fields(extra: &[(String, crate::RawValue)]) -> String {
    let mut out = String::new();
    for (k, v) in extra {
        if !out.is_empty() {
            out.push(' ');
        }
        let v = match v.decode() {
            Ok(rmpv::Value::String(s)) => s.as_str().unwrap_or("?").to_owned(),
            Ok(rmpv::Value::F64(f)) => format!("{f:.3}"),
            Ok(rmpv::Value::F32(f)) => format!("{f:.3}"),
            Ok(v) => v.to_string(),
            Err(_) => "?".to_owned(),
        };
        out.push_str(k);
        out.push('=');
        out.push_str(&v);
        if out.len() > 120 {
            let mut cut = 117;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push_str("...");
            break;
        }
    }
    out
}

/// The markers with `t0 <= ts < t1` of a time-sorted sequence.
pub fn in_view<'a, I>(markers: I, t0: i64, t1: i64) -> impl Iterator<Item = &'a Marker>
where
    I: IntoIterator<Item = &'a Marker>,
{
    markers
        .into_iter()
        .skip_while(move |m| m.ts_ms < t0)
        .take_while(move |m| m.ts_ms < t1)
}

/// The slice of sorted markers with `t0 <= ts < t1` (two binary searches).
pub fn slice_in_view(markers: &[Marker], t0: i64, t1: i64) -> &[Marker] {
    let a = markers.partition_point(|m| m.ts_ms < t0);
    let b = markers.partition_point(|m| m.ts_ms < t1).max(a);
    &markers[a..b]
}

/// Where markers fall: x of each mark and whether it is a preset load, at
/// most one per pixel column (a preset load wins its column).
pub fn columns<'a>(
    markers: impl Iterator<Item = &'a Marker>,
    x_of: impl Fn(i64) -> f32,
) -> Vec<(f32, &'a Marker)> {
    let mut out: Vec<(f32, &'a Marker)> = Vec::new();
    for m in markers {
        let x = x_of(m.ts_ms).round();
        match out.last_mut() {
            Some((lx, last)) if *lx == x => {
                if matches!(m.kind, MarkerKind::Preset(_)) {
                    *last = m;
                }
            }
            _ => out.push((x, m)),
        }
    }
    out
}

/// Draws preset loads as lines across `lanes` with their names along
/// `label_band`, and other events as short ticks at the top of `lanes`.
pub fn draw_across(
    painter: &Painter,
    marks: &[(f32, &Marker)],
    lanes: Rect,
    label_band: Rect,
    text: Color32,
) {
    let mut last_label_end = f32::NEG_INFINITY;
    for &(x, m) in marks {
        match &m.kind {
            MarkerKind::Preset(name) => {
                if lanes.is_positive() {
                    let mut mesh = Mesh::default();
                    vline(
                        &mut mesh,
                        x,
                        lanes.y_range(),
                        1.0,
                        PRESET_COLOR.gamma_multiply(0.7),
                    );
                    painter.add(mesh);
                }
                if x > last_label_end + 4.0 {
                    let r = painter.text(
                        Pos2::new(x + 2.0, label_band.center().y),
                        Align2::LEFT_CENTER,
                        name,
                        FontId::proportional(11.0),
                        PRESET_COLOR,
                    );
                    last_label_end = r.right();
                }
            }
            MarkerKind::Note => {}
            MarkerKind::Other(_) => {
                painter.line_segment(
                    [
                        Pos2::new(x, label_band.bottom() - 4.0),
                        Pos2::new(x, label_band.bottom()),
                    ],
                    Stroke::new(1.0, text.gamma_multiply(0.5)),
                );
            }
        }
    }
}

/// Draws notes as ticks in their own lane `row`.
pub fn draw_notes(painter: &Painter, marks: &[(f32, &Marker)], row: Rect) {
    let mut mesh = Mesh::default();
    for &(x, m) in marks {
        if m.kind == MarkerKind::Note {
            vline(
                &mut mesh,
                x,
                row.top() + 2.0..=row.bottom() - 2.0,
                1.5,
                NOTE_COLOR,
            );
        }
    }
    painter.add(mesh);
}

/// A vertical line `width` wide at `x` as one unfeathered rectangle (two
/// triangles; a feathered line segment is six, in three thin strips).
pub fn vline(mesh: &mut Mesh, x: f32, y: impl Into<egui::Rangef>, width: f32, color: Color32) {
    let r = Rect::from_x_y_ranges(x - width / 2.0..=x + width / 2.0, y);
    mesh.add_colored_rect(r, color);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_fields_in_words_and_preset_names() {
        let extra = vec![
            (
                "note".to_owned(),
                crate::RawValue::from_value(&rmpv::Value::from(60)),
            ),
            (
                "preset".to_owned(),
                crate::RawValue::from_value(&rmpv::Value::from("pad")),
            ),
            ("bad".to_owned(), crate::RawValue(vec![0xd9])),
        ];
        assert_eq!(describe_fields(&extra), "note=60 preset=pad bad=?");
        let m = Marker::from_event(5, "preset_load", &extra);
        assert_eq!(m.kind, MarkerKind::Preset("pad".into()));
        assert_eq!(Marker::from_event(5, "note_on", &[]).kind, MarkerKind::Note);
        assert_eq!(
            Marker::from_event(5, "clock", &[]).kind,
            MarkerKind::Other("clock".into())
        );
    }

    #[test]
    fn one_mark_per_column_and_presets_win() {
        let ms: Vec<Marker> = [
            (0, "note_on"),
            (1, "preset_load"),
            (2, "note_on"),
            (10, "x"),
        ]
        .iter()
        .map(|&(t, k)| Marker::from_event(t, k, &[]))
        .collect();
        let cols = columns(slice_in_view(&ms, 0, 100).iter(), |t| (t / 5) as f32);
        assert_eq!(cols.len(), 2);
        assert!(matches!(cols[0].1.kind, MarkerKind::Preset(_)));
        assert_eq!(slice_in_view(&ms, 1, 3).len(), 2);
        assert_eq!(in_view(ms.iter(), 2, 11).count(), 2);
    }
}

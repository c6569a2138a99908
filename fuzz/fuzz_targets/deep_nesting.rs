//! Payloads and session files nested as deep as the input says.
//!
//! The input is a recipe: a depth (three bytes: with the top two bits set
//! up to 300,000 levels, otherwise up to 2,047) and, per level, a
//! container kind (map or array) and whether scalars sit beside the child.
//! The payload is an envelope whose extra field holds that nest. The
//! envelope decoder must refuse it, as too deep and at the right byte,
//! exactly when it nests more than 64 levels (the envelope map is the
//! first). The nest is also written into a session file between ordinary
//! records: the strict reader must read every record, and loads in one part
//! and in several parallel parts must agree, whatever the depth (and in
//! time linear in the file, which libFuzzer's per-input timeout watches).

#![no_main]

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::OnceLock;

use integr8tor::envelope::{EnvelopeError, EnvelopeView, Topic};
use integr8tor::msgpack::{write as w, DecodeError, MAX_NESTING};
use integr8tor::session::{ReadOptions, Reader, Session};
use libfuzzer_sys::fuzz_target;

/// The nest: `levels` containers, innermost holding the integer 1; returns
/// the bytes and the offset of each container's header.
fn nest(recipe: &[u8], levels: usize) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    let mut headers = Vec::with_capacity(levels);
    for i in 0..levels {
        let b = recipe.get(i % recipe.len().max(1)).copied().unwrap_or(0);
        let with_sibling = b & 2 != 0;
        headers.push(out.len());
        if b & 1 == 0 {
            // a map: {"s": 7, "n": <child>} or {"n": <child>}
            w::map_len(&mut out, 1 + usize::from(with_sibling));
            if with_sibling {
                w::str(&mut out, "s");
                w::int(&mut out, 7);
            }
            w::str(&mut out, "n");
        } else {
            // an array: [7, <child>] or [<child>]
            out.push(0x90 | (1 + u8::from(with_sibling)));
            if with_sibling {
                w::int(&mut out, 7);
            }
        }
    }
    w::int(&mut out, 1);
    (out, headers)
}

/// An envelope on noise.events whose extra field `deep` holds `value`.
fn envelope(seq: u64, deep: Option<&[u8]>) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    w::map_len(&mut out, 7 + usize::from(deep.is_some()));
    for (k, v) in [
        ("session_id", "s-1"),
        ("producer_id", "fuzz"),
        ("actor", "user"),
        ("type", "note_on"),
    ] {
        w::str(&mut out, k);
        w::str(&mut out, v);
    }
    w::str(&mut out, "v");
    w::int(&mut out, 1);
    w::str(&mut out, "seq");
    w::uint(&mut out, seq);
    w::str(&mut out, "ts_ms");
    w::int(&mut out, 1_790_000_000_000 + seq as i64);
    let mut at = 0;
    if let Some(d) = deep {
        w::str(&mut out, "deep");
        at = out.len();
        out.extend_from_slice(d);
    }
    (out, at)
}

fn record(out: &mut Vec<u8>, data: &[u8]) {
    w::map_len(out, 4);
    w::str(out, "type");
    w::str(out, "event");
    w::str(out, "topic");
    w::str(out, "noise.events");
    w::str(out, "key");
    w::str(out, "note_on");
    w::str(out, "data");
    out.extend_from_slice(data);
}

fn temp_file() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!(
            "integr8tor-fuzz-deep-{}.msgpack",
            std::process::id()
        ))
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    // top two bits set: up to 300,000 levels (slow inputs); otherwise up to
    // 2,047, around the 64-level limit, so that most runs are quick
    let raw = u32::from_be_bytes([0, data[0], data[1], data[2]]);
    let levels = if raw & 0xc0_0000 == 0xc0_0000 {
        ((raw & 0x3f_ffff) % 300_000) as usize
    } else {
        (raw % 2_048) as usize
    };
    let recipe = &data[3..];
    let (deep, headers) = nest(recipe, levels);
    let (payload, deep_at) = envelope(1000, Some(&deep));

    // the decoder: refused exactly when the payload nests more than 64 levels
    let total = 1 + levels;
    match EnvelopeView::decode(Topic::Events, &payload) {
        Ok(view) => {
            assert!(total <= MAX_NESTING as usize, "{total} levels accepted");
            assert_eq!(view.extra_count(), 1);
        }
        Err(EnvelopeError::Msgpack(DecodeError::TooDeep { at, .. })) => {
            assert!(total > MAX_NESTING as usize, "{total} levels refused");
            // the container at level 65 is the 64th of the nest
            assert_eq!(at, deep_at + headers[MAX_NESTING as usize - 1]);
        }
        Err(e) => panic!("{total} levels: unexpected {e}"),
    }

    // a file with the nest among ordinary records
    let mut file = Vec::new();
    let before = 1 + (recipe.first().copied().unwrap_or(0) as u64 % 40);
    let after = 1 + (recipe.last().copied().unwrap_or(0) as u64 % 40);
    for seq in 0..before {
        record(&mut file, &envelope(seq + 1, None).0);
    }
    record(&mut file, &payload);
    for seq in 0..after {
        record(&mut file, &envelope(before + seq + 1, None).0);
    }
    let expected = before + 1 + after;

    let mut reader = Reader::new(
        &file[..],
        std::path::Path::new("fuzz"),
        ReadOptions::default(),
    );
    let mut n = 0u64;
    while let Some(_rec) = reader.next().expect("every record reads") {
        n += 1;
    }
    assert_eq!(n, expected);

    let path = temp_file();
    std::fs::write(path, &file).expect("writing the temporary file");
    let go = |_| ControlFlow::Continue(());
    let one = Session::open_with(path, ReadOptions::default(), go).expect("one part loads");
    assert_eq!(one.events().len() as u64, expected);
    for parts in [2, 5] {
        let many =
            Session::open_in_parts(path, ReadOptions::default(), parts, go).expect("parts load");
        // by instant and place: values are NaN on noise.events
        let table = |s: &Session| -> Vec<(i64, u64)> {
            s.events().iter().map(|e| (e.ts_ms, e.offset)).collect()
        };
        assert_eq!(table(&many), table(&one), "{parts} parts");
        assert_eq!(many.read_report(), one.read_report(), "{parts} parts");
    }
});

//! JSON Lines: one JSON object per record, in file order, each record
//! spelled as [`json`](super::json) spells MessagePack:
//!
//! ```text
//! {"type":"event","topic":"noise.params","key":"gen.1.cutoff","data":{"v":1,"session_id":"…","producer_id":"python.gui","seq":7,"ts_ms":1790000810311,"path":"gen.1.cutoff","value":0.25,"value_mapped":null,"actor":"user","source":"python"}}
//! {"type":"snapshot","ts_ms":1790000815127,"state":{"gen.1.cutoff":0.25}}
//! ```
//!
//! Every field of the record and of its envelope is there, in wire order.

use std::io::{BufWriter, Write};
use std::path::Path;

use super::output::Staged;
use super::source::{pipelined, Batch, Item};
use super::{json, Control, ExportError, ExportOptions, ExportStats};

/// Records as they are in the file, to be spelled on the writing thread.
#[derive(Default)]
struct Records {
    bytes: Vec<u8>,
    /// Each record's end in `bytes` and its offset in the file.
    ends: Vec<(usize, u64)>,
}

impl Batch for Records {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }
}

pub(crate) fn write(
    input: &Path,
    staged: &Staged,
    opts: &ExportOptions,
    ctl: &mut Control<'_>,
) -> Result<ExportStats, ExportError> {
    let mut file = BufWriter::with_capacity(1 << 20, staged.file()?);
    let mut line = Vec::with_capacity(1024);
    // the reader thread picks the records; the JSON is spelled here
    let (input_bytes, mut stats) = pipelined(
        input,
        staged.out(),
        opts,
        ctl,
        ExportStats::default(),
        |stats, batch: &mut Records, item| {
            let (raw, offset) = match item {
                Item::Event(e) => {
                    stats.events += 1;
                    (e.raw, e.offset)
                }
                Item::Snapshot { raw, offset, .. } => {
                    stats.snapshots += 1;
                    (raw, offset)
                }
            };
            batch.bytes.extend_from_slice(raw);
            batch.ends.push((batch.bytes.len(), offset));
            Ok(())
        },
        |batch: &mut Records| {
            let mut start = 0;
            for &(end, offset) in &batch.ends {
                line.clear();
                json::write_json(&batch.bytes[start..end], &mut line).map_err(|e| {
                    ExportError::Record {
                        path: input.to_owned(),
                        offset,
                        reason: format!("no JSON form: {e}"),
                    }
                })?;
                line.push(b'\n');
                file.write_all(&line).map_err(|e| staged.io(e))?;
                start = end;
            }
            Ok(())
        },
    )?;
    stats.input_bytes = input_bytes;
    stats.messages = stats.events + stats.snapshots;
    file.flush().map_err(|e| staged.io(e))?;
    Ok(stats)
}

//! The MCAP file of an export, laid out as the MCAP specification says
//! (magic, header, a data section of lz4 chunks each followed by its
//! message indexes, data end, a summary section of schemas, channels,
//! statistics and chunk indexes, summary offsets, footer, magic), with the
//! `mcap` crate's record types and its serialisation of them.
//!
//! Why not the crate's `Writer`: it writes each message to its lz4 stream
//! field by field, some seven small writes a message, and each goes through
//! liblz4's streaming update with its checksum and bound computations. With
//! two messages a record that is most of an export's time. Here a chunk's
//! records are appended to a buffer, and the whole chunk is compressed in
//! one call when it is full: an lz4 frame without block checksums, which
//! MCAP readers expect, and without a content checksum, as the chunk's own
//! CRC covers the same bytes; its blocks are independent and up to 4 MiB
//! (a tenth less CPU than linked 64 KiB blocks, and a slightly smaller file).
//!
//! The CRCs are those of the specification: each chunk's uncompressed
//! records, the data section (from the first magic byte) in the data end
//! record, and the summary section in the footer.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Cursor, Write};

use ::mcap::records::{self, op, MessageIndexEntry};
use binrw::BinWrite;

/// Uncompressed bytes of records in a chunk before it is closed.
const CHUNK_BYTES: usize = 4 << 20;

/// The compression named in each chunk.
const COMPRESSION: &str = "lz4";

/// Why the file could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum McapFileError {
    /// Writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// More channels than MCAP's 16-bit ids can number.
    #[error("MCAP: more than {} channels", u16::MAX as u32 + 1)]
    TooManyChannels,
}

/// A record's opcode and body: what [`McapFile::record`] frames.
fn body(rec: &impl for<'a> BinWrite<Args<'a> = ()>) -> Vec<u8> {
    let mut c = Cursor::new(Vec::new());
    // writing into memory cannot fail
    rec.write_le(&mut c)
        .expect("serialising an MCAP record into memory");
    c.into_inner()
}

fn frame(out: &mut Vec<u8>, opcode: u8, body: &[u8]) {
    out.push(opcode);
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
}

/// A schema's record body: its header, then the data with a 32-bit length.
fn schema_body(id: u16, name: &str, encoding: &str, data: &[u8]) -> Vec<u8> {
    let mut b = body(&records::SchemaHeader {
        id,
        name: name.to_owned(),
        encoding: encoding.to_owned(),
    });
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(data);
    b
}

/// An MCAP file being written to `W`, which only needs to take bytes in order.
pub(crate) struct McapFile<W: Write> {
    out: W,
    /// Bytes written so far.
    pos: u64,
    /// CRC of the section being written (data, then summary).
    crc: crc32fast::Hasher,
    /// Schema records' bodies, id `i + 1` at `i`, and their ids by name.
    schemas: Vec<Vec<u8>>,
    schema_ids: HashMap<String, u16>,
    /// Channel records' bodies, id `i` at `i`.
    channels: Vec<Vec<u8>>,
    chunk_indexes: Vec<records::ChunkIndex>,
    message_count: u64,
    bounds: Option<(u64, u64)>,
    /// Messages per channel id.
    channel_counts: Vec<u64>,
    /// The chunk being filled: its uncompressed records and time bounds.
    chunk: Vec<u8>,
    chunk_bounds: Option<(u64, u64)>,
    /// Its message index entries by channel id, and the ids that have some.
    index: Vec<Vec<MessageIndexEntry>>,
    indexed: Vec<u16>,
    compressed: Vec<u8>,
}

impl<W: Write> McapFile<W> {
    /// Starts the file: magic and header record.
    pub(crate) fn new(out: W, profile: &str, library: &str) -> Result<Self, McapFileError> {
        let mut f = McapFile {
            out,
            pos: 0,
            crc: crc32fast::Hasher::new(),
            schemas: Vec::new(),
            schema_ids: HashMap::new(),
            channels: Vec::new(),
            chunk_indexes: Vec::new(),
            message_count: 0,
            bounds: None,
            channel_counts: Vec::new(),
            chunk: Vec::with_capacity(CHUNK_BYTES + (64 << 10)),
            chunk_bounds: None,
            index: Vec::new(),
            indexed: Vec::new(),
            compressed: Vec::new(),
        };
        let mut head = ::mcap::MAGIC.to_vec();
        frame(
            &mut head,
            op::HEADER,
            &body(&records::Header {
                profile: profile.to_owned(),
                library: library.to_owned(),
            }),
        );
        f.put(&head)?;
        Ok(f)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.crc.update(bytes);
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// The id of the schema `name` (added on first use with `encoding` and
    /// `data`; a name always has the same schema here).
    pub(crate) fn schema(&mut self, name: &str, encoding: &str, data: &[u8]) -> u16 {
        if let Some(&id) = self.schema_ids.get(name) {
            return id;
        }
        // ids from 1: 0 is a channel without a schema; never more than the
        // channels, which are counted
        let id = self.schemas.len() as u16 + 1;
        let b = schema_body(id, name, encoding, data);
        frame(&mut self.chunk, op::SCHEMA, &b);
        self.schemas.push(b);
        self.schema_ids.insert(name.to_owned(), id);
        id
    }

    /// Adds a channel; returns its id (0, 1, 2... in order).
    pub(crate) fn channel(
        &mut self,
        schema_id: u16,
        topic: &str,
        message_encoding: &str,
    ) -> Result<u16, McapFileError> {
        let id = u16::try_from(self.channels.len()).map_err(|_| McapFileError::TooManyChannels)?;
        let b = body(&records::Channel {
            id,
            schema_id,
            topic: topic.to_owned(),
            message_encoding: message_encoding.to_owned(),
            metadata: BTreeMap::new(),
        });
        frame(&mut self.chunk, op::CHANNEL, &b);
        self.channels.push(b);
        self.channel_counts.push(0);
        self.index.push(Vec::new());
        Ok(id)
    }

    /// Writes a message on `channel` (an id from [`McapFile::channel`]);
    /// log and publish time are `time` (nanoseconds).
    pub(crate) fn message(
        &mut self,
        channel: u16,
        sequence: u32,
        time: u64,
        data: &[u8],
    ) -> Result<(), McapFileError> {
        if self.chunk.len() >= CHUNK_BYTES {
            self.finish_chunk()?;
        }
        let entries = &mut self.index[channel as usize];
        if entries.is_empty() {
            self.indexed.push(channel);
        }
        entries.push(MessageIndexEntry {
            log_time: time,
            offset: self.chunk.len() as u64,
        });
        let c = &mut self.chunk;
        c.push(op::MESSAGE);
        c.extend_from_slice(&(2 + 4 + 8 + 8 + data.len() as u64).to_le_bytes());
        c.extend_from_slice(&channel.to_le_bytes());
        c.extend_from_slice(&sequence.to_le_bytes());
        c.extend_from_slice(&time.to_le_bytes());
        c.extend_from_slice(&time.to_le_bytes());
        c.extend_from_slice(data);
        self.channel_counts[channel as usize] += 1;
        self.message_count += 1;
        self.chunk_bounds = Some(widen(self.chunk_bounds, time));
        self.bounds = Some(widen(self.bounds, time));
        Ok(())
    }

    /// Compresses and writes the chunk being filled, then its message indexes.
    fn finish_chunk(&mut self) -> Result<(), McapFileError> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let uncompressed_crc = crc32fast::hash(&self.chunk);
        let mut buf = std::mem::take(&mut self.compressed);
        buf.clear();
        // the chunk's CRC covers its records, so the frame has no checksums
        let mut enc = lz4::EncoderBuilder::new()
            .checksum(lz4::ContentChecksum::NoChecksum)
            .block_size(lz4::BlockSize::Max4MB)
            .block_mode(lz4::BlockMode::Independent)
            .block_checksum(lz4::liblz4::BlockChecksum::NoBlockChecksum)
            .build(buf)?;
        enc.write_all(&self.chunk)?;
        let (buf, done) = enc.finish();
        done?;
        let (start, end) = self.chunk_bounds.unwrap_or((0, 0));
        let header = records::ChunkHeader {
            message_start_time: start,
            message_end_time: end,
            uncompressed_size: self.chunk.len() as u64,
            uncompressed_crc,
            compression: COMPRESSION.to_owned(),
            compressed_size: buf.len() as u64,
        };
        let head = body(&header);
        let chunk_start = self.pos;
        let mut framing = Vec::with_capacity(9 + head.len());
        framing.push(op::CHUNK);
        framing.extend_from_slice(&((head.len() + buf.len()) as u64).to_le_bytes());
        framing.extend_from_slice(&head);
        self.put(&framing)?;
        self.put(&buf)?;
        let chunk_length = self.pos - chunk_start;
        self.compressed = buf;

        // the message indexes, by channel id
        self.indexed.sort_unstable();
        let mut offsets = BTreeMap::new();
        let mut indexes = Vec::new();
        let index_start = self.pos;
        for &id in &self.indexed {
            let records = std::mem::take(&mut self.index[id as usize]);
            offsets.insert(id, index_start + indexes.len() as u64);
            frame(
                &mut indexes,
                op::MESSAGE_INDEX,
                &body(&records::MessageIndex {
                    channel_id: id,
                    records,
                }),
            );
        }
        self.put(&indexes)?;
        self.indexed.clear();
        self.chunk_indexes.push(records::ChunkIndex {
            message_start_time: start,
            message_end_time: end,
            chunk_start_offset: chunk_start,
            chunk_length,
            message_index_offsets: offsets,
            message_index_length: indexes.len() as u64,
            compression: COMPRESSION.to_owned(),
            compressed_size: header.compressed_size,
            uncompressed_size: header.uncompressed_size,
        });
        self.chunk.clear();
        self.chunk_bounds = None;
        Ok(())
    }

    /// Writes the last chunk, the data end, the summary and the footer;
    /// returns the output.
    pub(crate) fn finish(mut self) -> Result<W, McapFileError> {
        self.finish_chunk()?;
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        let mut end = Vec::new();
        frame(
            &mut end,
            op::DATA_END,
            &body(&records::DataEnd {
                data_section_crc: crc,
            }),
        );
        self.put(&end)?;

        // the summary: each group's records, then where each group starts
        self.crc = crc32fast::Hasher::new();
        let summary_start = self.pos;
        let (start, end) = self.bounds.unwrap_or((0, 0));
        let statistics = records::Statistics {
            message_count: self.message_count,
            schema_count: self.schemas.len() as u16,
            channel_count: self.channels.len() as u32,
            attachment_count: 0,
            metadata_count: 0,
            chunk_count: self.chunk_indexes.len() as u32,
            message_start_time: start,
            message_end_time: end,
            channel_message_counts: self
                .channel_counts
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
                .map(|(id, &n)| (id as u16, n))
                .collect(),
        };
        let mut groups: Vec<(u8, Vec<u8>)> = Vec::new();
        let mut group = |opcode: u8, bodies: &mut dyn Iterator<Item = Vec<u8>>| {
            let mut bytes = Vec::new();
            for b in bodies {
                frame(&mut bytes, opcode, &b);
            }
            if !bytes.is_empty() {
                groups.push((opcode, bytes));
            }
        };
        group(op::SCHEMA, &mut self.schemas.iter().cloned());
        group(op::CHANNEL, &mut self.channels.iter().cloned());
        group(op::STATISTICS, &mut std::iter::once(body(&statistics)));
        group(op::CHUNK_INDEX, &mut self.chunk_indexes.iter().map(body));
        let mut offsets = Vec::new();
        for (opcode, bytes) in &groups {
            offsets.push(records::SummaryOffset {
                group_opcode: *opcode,
                group_start: self.pos,
                group_length: bytes.len() as u64,
            });
            self.put(bytes)?;
        }
        let summary_offset_start = self.pos;
        let mut tail = Vec::new();
        for o in &offsets {
            frame(&mut tail, op::SUMMARY_OFFSET, &body(o));
        }
        // the footer's CRC covers the summary up to its own field
        tail.push(op::FOOTER);
        tail.extend_from_slice(&(8u64 + 8 + 4).to_le_bytes());
        tail.extend_from_slice(&summary_start.to_le_bytes());
        tail.extend_from_slice(&summary_offset_start.to_le_bytes());
        self.put(&tail)?;
        let summary_crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        let mut last = summary_crc.to_le_bytes().to_vec();
        last.extend_from_slice(::mcap::MAGIC);
        self.put(&last)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn widen(bounds: Option<(u64, u64)>, t: u64) -> (u64, u64) {
    match bounds {
        None => (t, t),
        Some((a, b)) => (a.min(t), b.max(t)),
    }
}

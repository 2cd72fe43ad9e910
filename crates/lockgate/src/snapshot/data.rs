//! A snapshot's data files, in both directions: rows encoded as COPY text lines
//! (`lockgate_core::copytext`) and zstd-compressed into a local spool file while
//! their SHA-256 and sizes are counted ([`Spool`]); and a verified local copy read
//! back as batches for the bulk writer ([`SnapshotSource`]), typed by the columns'
//! kinds, with a bad line named by file, line and column.
//!
//! Why zstd over COPY text: the text form is what PostgreSQL's COPY reads, is compact
//! (no per-value framing beyond a tab), and streams line by line; zstd at level 6
//! ([`ZSTD_LEVEL`]) makes it as small as `pg_dump -Fc`'s gzip output in less time,
//! on its own thread, and reads back several times faster than gzip.

use lockgate_bundle::Observed;
use lockgate_core::copytext::{decode_line, encode_row, hex_string};
use lockgate_core::{Batch, Kind, Row, Value};
use lockgate_db::writer::{BatchSource, SourceError};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc;

/// zstd's level for data files: 6, the first level that compresses COPY text at least
/// as well as `pg_dump -Fc`'s gzip (bench/snapshot.sh measures both), still several
/// times faster than gzip and run on a thread of its own; decompression speed does
/// not depend on the level.
pub const ZSTD_LEVEL: i32 = 6;

/// The most bytes (estimated) of one batch read back from a data file.
const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Bytes of encoded rows gathered before they go to the compressor.
const CHUNK: usize = 1 << 20;

/// What a finished data file holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Rows.
    pub rows: u64,
    /// Bytes of encoded rows before compression.
    pub bytes: u64,
    /// Bytes of the compressed file.
    pub stored_bytes: u64,
    /// SHA-256 of the compressed file, lower-case hex.
    pub sha256: String,
    /// Per column, the longest text or bytes value written (`None` for other kinds,
    /// and for columns that held only NULLs).
    pub observed: Vec<Option<Observed>>,
}

/// Counts and hashes what passes through to the file.
struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// What the compressing thread gives back: the file's size and SHA-256.
type Compressed = std::io::Result<(u64, String)>;

/// One data file being written: rows in, a compressed local file out. Rows are
/// encoded on the caller's thread and compressed (and hashed, and written) on a thread
/// of the spool's own, so that reading the source and compressing overlap: the
/// channel between them holds a few chunks, so memory stays bounded and a slow
/// compressor slows the reader down instead of piling up rows.
pub struct Spool {
    chunks: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    compressor: Option<std::thread::JoinHandle<Compressed>>,
    kinds: Vec<Kind>,
    any: bool,
    buf: Vec<u8>,
    rows: u64,
    bytes: u64,
    observed: Vec<Option<Observed>>,
}

/// Chunks waiting for the compressor.
const CHUNKS_IN_FLIGHT: usize = 4;

impl Spool {
    /// Starts a data file at `path` for rows of columns of these kinds.
    pub fn create(path: &Path, kinds: Vec<Kind>) -> std::io::Result<Spool> {
        let file = BufWriter::with_capacity(256 * 1024, File::create(path)?);
        let mut encoder = zstd::Encoder::new(
            Hashing {
                inner: file,
                hash: Sha256::new(),
                bytes: 0,
            },
            ZSTD_LEVEL,
        )?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
        let compressor = std::thread::spawn(move || -> Compressed {
            for chunk in rx {
                encoder.write_all(&chunk)?;
            }
            let mut hashing = encoder.finish()?;
            hashing.flush()?;
            hashing.inner.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            Ok((hashing.bytes, hex_string(&hashing.hash.finalize())))
        });
        Ok(Spool {
            chunks: Some(tx),
            compressor: Some(compressor),
            any: kinds.contains(&Kind::Any),
            kinds,
            buf: Vec::with_capacity(CHUNK + 64 * 1024),
            rows: 0,
            bytes: 0,
            observed: Vec::new(),
        })
    }

    /// Appends one row (values in column order).
    pub fn row(&mut self, values: &[Value]) -> std::io::Result<()> {
        if self.observed.len() < values.len() {
            self.observed.resize(values.len(), None);
        }
        for (seen, v) in self.observed.iter_mut().zip(values) {
            observe(seen, v);
        }
        encode_row(values, self.any.then_some(&self.kinds[..]), &mut self.buf);
        self.rows += 1;
        if self.buf.len() >= CHUNK {
            self.flush_buf()?;
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.bytes += self.buf.len() as u64;
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK + 64 * 1024));
        let sent = self.chunks.as_ref().map(|tx| tx.send(chunk).is_ok());
        if sent != Some(true) {
            // The compressor stopped: its error says why.
            return Err(self
                .join()
                .err()
                .unwrap_or_else(|| std::io::Error::other("the compressor stopped")));
        }
        Ok(())
    }

    /// Ends the compressor; its result.
    fn join(&mut self) -> Compressed {
        self.chunks = None;
        match self.compressor.take() {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the compressor panicked"))),
            None => Err(std::io::Error::other("the data file was already finished")),
        }
    }

    /// Ends the file; its sizes and checksum.
    pub fn finish(mut self) -> std::io::Result<Written> {
        self.flush_buf()?;
        let (stored_bytes, sha256) = self.join()?;
        Ok(Written {
            rows: self.rows,
            bytes: self.bytes,
            stored_bytes,
            sha256,
            observed: std::mem::take(&mut self.observed),
        })
    }

    /// Rows appended so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }
}

/// Widens `seen` to hold `v`'s length. Characters are counted only for a text
/// longer in bytes than the longest so far, as a text has no more characters than
/// bytes: most values cost one comparison.
fn observe(seen: &mut Option<Observed>, v: &Value) {
    match v {
        Value::Text(t) => {
            let o = seen.get_or_insert(Observed {
                max_chars: Some(0),
                max_bytes: 0,
            });
            let bytes = t.len() as u64;
            if bytes > o.max_chars.unwrap_or(0) {
                let chars = t.chars().count() as u64;
                o.max_chars = Some(o.max_chars.unwrap_or(0).max(chars));
            }
            o.max_bytes = o.max_bytes.max(bytes);
        }
        Value::Bytes(b) => {
            let o = seen.get_or_insert(Observed::default());
            o.max_bytes = o.max_bytes.max(b.len() as u64);
        }
        _ => {}
    }
}

/// SHA-256 and size of a local file, streamed.
pub fn file_sha256(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let read = f.read(&mut buf)?;
        if read == 0 {
            break;
        }
        hash.update(&buf[..read]);
        n += read as u64;
    }
    Ok((hex_string(&hash.finalize()), n))
}

/// A verified local data file read back as batches, for the bulk writer. The file
/// is re-readable, so the writer's diagnose pass and retries read it again from
/// the start instead of holding rows in memory.
pub struct SnapshotSource {
    /// The local file.
    pub path: PathBuf,
    /// The name used in messages (the store's key).
    pub name: String,
    /// The target's column names for the file's fields, in order.
    pub columns: Arc<Vec<String>>,
    /// The kinds the fields are typed by (the snapshot's).
    pub kinds: Vec<Kind>,
    /// Rows per batch.
    pub batch_rows: usize,
}

impl BatchSource for SnapshotSource {
    fn open(&self) -> mpsc::Receiver<Result<Batch, SourceError>> {
        let (tx, rx) = mpsc::channel(4);
        let path = self.path.clone();
        let name = Arc::new(self.name.clone());
        let columns = self.columns.clone();
        let kinds = self.kinds.clone();
        let batch_rows = self.batch_rows.max(1);
        std::thread::spawn(move || {
            if let Err(e) = read_batches(&path, &name, &columns, &kinds, batch_rows, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        rx
    }
}

fn read_batches(
    path: &Path,
    name: &Arc<String>,
    columns: &Arc<Vec<String>>,
    kinds: &[Kind],
    batch_rows: usize,
    tx: &mpsc::Sender<Result<Batch, SourceError>>,
) -> Result<(), SourceError> {
    let io = |e: std::io::Error| SourceError(format!("{name}: {e}; the snapshot's data file is damaged"));
    let file = File::open(path).map_err(io)?;
    let decoder = zstd::Decoder::new(file).map_err(io)?;
    let mut reader = BufReader::with_capacity(256 * 1024, decoder);
    let mut line = Vec::new();
    let mut number = 0u64;
    let new_batch = || {
        let mut b = Batch::new(columns.clone());
        b.source = Some(name.clone());
        b.checked = true;
        b
    };
    let mut batch = new_batch();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(io)? == 0 {
            break;
        }
        number += 1;
        if line.pop() != Some(b'\n') {
            return Err(SourceError(format!(
                "{name}:{number}: the last line has no line end; the snapshot's data file is truncated"
            )));
        }
        let values = decode_line(&line, kinds).map_err(|e| {
            let column = columns.get(e.field).map(String::as_str).unwrap_or("?");
            SourceError(format!("{name}:{number}: column {column}: {}", e.error))
        })?;
        batch.push(Row {
            line: number,
            number: 0,
            values,
        });
        // Capped by bytes as well as rows (as every reader's batches are): a table
        // of large values makes smaller batches, not more memory.
        if batch.rows.len() >= batch_rows || batch.bytes >= BATCH_BYTES {
            let full = std::mem::replace(&mut batch, new_batch());
            if tx.blocking_send(Ok(full)).is_err() {
                return Ok(());
            }
        }
    }
    if !batch.rows.is_empty() {
        let _ = tx.blocking_send(Ok(batch));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rows_round_trip_through_a_spool_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tsv.zst");
        let kinds = vec![
            Kind::Int {
                bytes: 8,
                unsigned: false,
            },
            Kind::Text {
                max_chars: None,
                max_bytes: None,
                form: Default::default(),
            },
        ];
        let mut spool = Spool::create(&path, kinds.clone()).unwrap();
        for i in 0..2500 {
            spool.row(&[Value::Int(i), Value::Text(format!("row\t{i}\n"))]).unwrap();
        }
        let written = spool.finish().unwrap();
        assert_eq!(written.rows, 2500);
        assert_eq!(
            file_sha256(&path).unwrap(),
            (written.sha256.clone(), written.stored_bytes)
        );
        let source = SnapshotSource {
            path,
            name: "t".into(),
            columns: Arc::new(vec!["id".into(), "name".into()]),
            kinds,
            batch_rows: 1000,
        };
        let mut rx = source.open();
        let mut n = 0;
        while let Some(b) = rx.recv().await {
            for r in b.unwrap().rows {
                assert_eq!(r.values[1], Value::Text(format!("row\t{n}\n")));
                n += 1;
            }
        }
        assert_eq!(n, 2500);
    }
}

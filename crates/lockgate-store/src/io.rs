//! Streaming both ways: [`ObjectWriter`] (multipart upload with backpressure, visible only
//! on finish) and [`ObjectReader`] (an object chunk by chunk).

use crate::{Store, StoreError};
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use object_store::{MultipartUpload, WriteMultipart};

/// The size of one uploaded part. S3 needs at least 5 MiB for every part but the last
/// and allows 10,000 parts: 8 MiB parts allow objects up to about 78 GiB.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// How many parts upload at once. A writer holds at most this many parts in flight plus
/// the one it is filling: (`PARTS_IN_FLIGHT` + 1) × [`PART_SIZE`] of memory.
pub const PARTS_IN_FLIGHT: usize = 4;

/// A new object being written. Nothing is visible under its key until
/// [`ObjectWriter::finish`] succeeds; [`ObjectWriter::abort`], or dropping the writer,
/// leaves nothing behind (a folder store's partial file is removed; an S3 multipart
/// upload is aborted, and one left by a killed process is invisible to listings).
pub struct ObjectWriter {
    store: Store,
    key: String,
    /// `None` once finished or aborted.
    upload: Option<WriteMultipart>,
    written: u64,
}

impl std::fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("store", &self.store.url)
            .field("key", &self.key)
            .field("written", &self.written)
            .finish()
    }
}

impl ObjectWriter {
    pub(crate) fn new(store: Store, key: String, upload: Box<dyn MultipartUpload>) -> ObjectWriter {
        ObjectWriter {
            store,
            key,
            upload: Some(WriteMultipart::new_with_chunk_size(upload, PART_SIZE)),
            written: 0,
        }
    }

    fn err(&self, err: object_store::Error) -> StoreError {
        self.store.err(err, &format!("writing {}", self.key), None)
    }

    /// Appends `bytes`. Full parts start uploading at once, up to [`PARTS_IN_FLIGHT`] at
    /// a time; past that this waits for one to complete, so memory stays bounded however
    /// fast the caller writes and however large `bytes` is.
    pub async fn write(&mut self, mut bytes: &[u8]) -> Result<(), StoreError> {
        while !bytes.is_empty() {
            // Every part is exactly PART_SIZE, so the part being filled holds
            // `written % PART_SIZE` bytes.
            let room = PART_SIZE - (self.written % PART_SIZE as u64) as usize;
            let take = room.min(bytes.len());
            let upload = self.upload.as_mut().expect("a writer is used until finish or abort");
            if take == room {
                // This slice completes a part, which starts uploading: make room first.
                if let Err(e) = upload.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    return Err(self.err(e));
                }
            }
            let upload = self.upload.as_mut().expect("a writer is used until finish or abort");
            upload.write(&bytes[..take]);
            self.written += take as u64;
            bytes = &bytes[take..];
        }
        Ok(())
    }

    /// Uploads what is buffered, waits for every part and completes the object, which is
    /// visible from now on; returns its size in bytes. On an error nothing is visible and
    /// the upload is aborted.
    pub async fn finish(mut self) -> Result<u64, StoreError> {
        let upload = self.upload.take().expect("a writer is used until finish or abort");
        match upload.finish().await {
            Ok(_) => Ok(self.written),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Gives up: nothing is left behind (the multipart upload is aborted, a folder
    /// store's partial file removed).
    pub async fn abort(mut self) -> Result<(), StoreError> {
        let upload = self.upload.take().expect("a writer is used until finish or abort");
        upload
            .abort()
            .await
            .map_err(|e| self.store.err(e, &format!("aborting the write of {}", self.key), None))
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        let Some(upload) = self.upload.take() else { return };
        // Dropped unfinished (an error, a panic, a cancelled task): abort in the
        // background where a runtime is running. Without one, a folder store's partial
        // file is still removed by object_store's own drop, and an S3 upload's parts stay
        // invisible until the bucket's lifecycle rule for incomplete uploads reaps them.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = upload.abort().await;
            });
        }
    }
}

/// An object read chunk by chunk; memory is bounded by the size of a chunk, which the
/// store chooses (a network read, or a slice of a file).
pub struct ObjectReader {
    store: Store,
    key: String,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("store", &self.store.url)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ObjectReader {
    pub(crate) fn new(store: Store, key: String, stream: BoxStream<'static, object_store::Result<Bytes>>) -> Self {
        ObjectReader { store, key, stream }
    }

    /// The next chunk, or `None` at the end of the object.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        loop {
            match self.stream.next().await {
                None => return Ok(None),
                // Empty frames carry nothing a caller needs.
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => return Ok(Some(chunk)),
                Some(Err(e)) => {
                    return Err(self.store.err(e, &format!("reading {}", self.key), Some(&self.key)));
                }
            }
        }
    }
}

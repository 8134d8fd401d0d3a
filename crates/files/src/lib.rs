//! Attachment storage on local disk. Files are streamed to a temporary file while their SHA-256
//! is computed, fsynced, then renamed into place: memory use does not depend on file size, and a
//! crash never leaves a half-written attachment under its final name. With a key ring, files
//! are sealed on the way (see `sealing`): what reaches the disk is never the plaintext.

pub mod sealing;
pub use sealing::{new_master_key, KeyRing, SealError};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::fs;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("le fichier dépasse la taille maximale autorisée ({limit} octets)")]
    TooLarge { limit: u64 },
    #[error("le fichier est vide")]
    Empty,
    #[error("erreur de stockage : {0}")]
    Io(#[from] std::io::Error),
    #[error("lecture interrompue : {0}")]
    Body(String),
    #[error("clé de stockage invalide")]
    InvalidKey,
    #[error("chiffrement : {0}")]
    Seal(#[from] SealError),
}

/// What was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub storage_key: String,
    pub size: u64,
    pub sha256: String,
    /// The first bytes, for media-type sniffing.
    pub head: Vec<u8>,
    /// The file's own key, wrapped by the master key (`None`: stored in clear).
    pub wrapped_key: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
    max_size: u64,
    keys: Option<std::sync::Arc<KeyRing>>,
    /// Whether documents are written with direct IO (see `BatchedFile`).
    direct: bool,
    buffers: BufferPool,
}

const SNIFF_BYTES: usize = 512;

/// Bytes gathered before each write to disk. File IO runs on tokio's blocking threads, and each
/// trip there is a thread handoff: written per sealed segment (64 KiB), a 1 MiB document took
/// about twenty, and under 16 submitting clients those handoffs cost more CPU than the
/// writes. Memory stays bounded by this size per upload. At 512 KiB, a sealed 1 MiB document
/// (1 MiB and a few hundred bytes) took three trips; at 1 MiB it takes two, and the server
/// made 2.7 fewer context switches per submission (BENCHMARKS.md, nineteenth session).
const WRITE_BATCH: usize = 1024 * 1024;

/// What direct IO asks of each write: its buffer, its offset in the file and its length are
/// multiples of the disk's logical block size. 4096 covers the block sizes in use.
const DIRECT_ALIGNMENT: usize = 4096;

/// A buffer of fixed capacity whose content starts on a `DIRECT_ALIGNMENT` boundary, found
/// inside a slightly larger allocation (no unsafe code, no allocator of its own). The
/// allocation is reserved, not zeroed: zeroing 1 MiB for each upload before the document
/// overwrote it cost as much CPU as sealing (`memset` took 2.5 % of the server's samples under
/// 16 submitting clients).
struct AlignedBuffer {
    /// `start` bytes of padding, then the content; never grows past its first allocation,
    /// so the content stays where it was aligned.
    storage: Vec<u8>,
    start: usize,
    capacity: usize,
}

impl AlignedBuffer {
    /// `capacity` is a multiple of `DIRECT_ALIGNMENT`, so a full buffer is one direct write.
    fn new(capacity: usize) -> AlignedBuffer {
        // The allocation's spare block covers any offset to the boundary.
        let mut storage: Vec<u8> = Vec::with_capacity(capacity + DIRECT_ALIGNMENT);
        let start = storage.as_ptr().align_offset(DIRECT_ALIGNMENT);
        storage.resize(start, 0);
        AlignedBuffer {
            storage,
            start,
            capacity,
        }
    }

    /// Appends as much of `bytes` as fits and says how much that was.
    fn fill(&mut self, bytes: &[u8]) -> usize {
        let taken = (self.capacity - self.len()).min(bytes.len());
        self.storage.extend_from_slice(&bytes[..taken]);
        taken
    }

    fn is_full(&self) -> bool {
        self.len() == self.capacity
    }

    fn len(&self) -> usize {
        self.storage.len() - self.start
    }

    fn clear(&mut self) {
        self.storage.truncate(self.start);
    }

    fn content(&self) -> &[u8] {
        &self.storage[self.start..]
    }

    /// The content followed by zeros up to the next block boundary: the last direct write of a
    /// file, which is then cut back to its length.
    fn padded(&mut self) -> &[u8] {
        let end = self.start + self.len().next_multiple_of(DIRECT_ALIGNMENT);
        self.storage.resize(end, 0);
        &self.storage[self.start..]
    }
}

/// Write buffers kept from one upload to the next. A fresh 1 MiB buffer per upload cost a page
/// fault and the kernel's zeroing of each of its pages, about 3 % of the server's samples under
/// 16 submitting clients. At most `POOLED_BUFFERS` are kept, so memory stays bounded whatever
/// the peak of concurrent uploads was.
#[derive(Clone, Default)]
struct BufferPool(std::sync::Arc<std::sync::Mutex<Vec<AlignedBuffer>>>);

/// As many as the uploads usually under way at once on a busy server.
const POOLED_BUFFERS: usize = 16;

impl BufferPool {
    fn take(&self) -> AlignedBuffer {
        self.0
            .lock()
            .ok()
            .and_then(|mut buffers| buffers.pop())
            .unwrap_or_else(|| AlignedBuffer::new(WRITE_BATCH))
    }

    fn give_back(&self, mut buffer: AlignedBuffer) {
        buffer.clear();
        if let Ok(mut buffers) = self.0.lock() {
            if buffers.len() < POOLED_BUFFERS {
                buffers.push(buffer);
            }
        }
    }

    fn kept(&self) -> usize {
        self.0.lock().map(|buffers| buffers.len()).unwrap_or(0)
    }
}

impl std::fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferPool")
            .field("kept", &self.kept())
            .finish()
    }
}

/// Creates (or empties) the file at `path`, for direct IO when `direct`.
fn create_file(path: &Path, direct: bool) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(target_os = "linux")]
    if direct {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_DIRECT);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = direct;
    options.open(path)
}

/// Whether files in `dir` can be written with direct IO: a probe file is written, then
/// removed. Not every file system takes it (tmpfs before Linux 6.6, some network ones).
async fn direct_io_works(dir: &Path) -> bool {
    if !cfg!(target_os = "linux") {
        return false;
    }
    let probe = dir.join(format!(".probe-{}", Uuid::now_v7().simple()));
    tokio::task::spawn_blocking(move || {
        let written = create_file(&probe, true).and_then(|mut file| {
            let mut block = AlignedBuffer::new(DIRECT_ALIGNMENT);
            block.fill(&[0; DIRECT_ALIGNMENT]);
            std::io::Write::write_all(&mut file, block.content())
        });
        let _ = std::fs::remove_file(&probe);
        written.is_ok()
    })
    .await
    .unwrap_or(false)
}

/// A temporary file written in batches on the blocking threads, then made durable and moved
/// to its final name in one last trip.
///
/// Where the file system takes it, the file is written with direct IO: the document goes from
/// this buffer to the disk without a copy in the page cache. Measured on the benchmark machine
/// with `dd`, writing and syncing 1 GB took 1.42 s of kernel CPU through the page cache and
/// 0.12 s direct. It also leaves the page cache to what is read again (the database's pages),
/// instead of filling it with documents that are seldom read back.
struct BatchedFile {
    temp_path: PathBuf,
    buffers: BufferPool,
    direct: bool,
    file: Option<std::fs::File>,
    /// `None` only while a batch is on a blocking thread.
    pending: Option<AlignedBuffer>,
    /// Bytes written to the file so far.
    written: u64,
}

impl BatchedFile {
    fn new(temp_path: PathBuf, direct: bool, buffers: &BufferPool) -> BatchedFile {
        BatchedFile {
            temp_path,
            pending: Some(buffers.take()),
            buffers: buffers.clone(),
            direct,
            file: None,
            written: 0,
        }
    }

    async fn write(&mut self, mut bytes: &[u8]) -> Result<(), FileError> {
        while !bytes.is_empty() {
            let pending = self.pending.as_mut().ok_or_else(Self::lost_buffer)?;
            let taken = pending.fill(bytes);
            bytes = &bytes[taken..];
            if pending.is_full() {
                self.blocking(false, |_, _| Ok(())).await?;
            }
        }
        Ok(())
    }

    /// Writes what is left, fsyncs the file, renames it to `final_path` and fsyncs the
    /// directory (the rename is durable only once its directory is: a receipt is given after
    /// this).
    async fn finish(&mut self, final_path: PathBuf) -> Result<(), FileError> {
        self.blocking(true, move |file, temp_path| {
            file.sync_all()?;
            let parent = final_path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(parent)?;
            std::fs::rename(temp_path, &final_path)?;
            std::fs::File::open(parent)?.sync_all()
        })
        .await
    }

    /// Runs on a blocking thread: creates the file if needed, writes the pending batch (the
    /// `last` one, direct, padded to a whole block and the file cut back to its length), then
    /// `then`.
    async fn blocking<F>(&mut self, last: bool, then: F) -> Result<(), FileError>
    where
        F: FnOnce(&std::fs::File, &Path) -> std::io::Result<()> + Send + 'static,
    {
        let file = self.file.take();
        let mut pending = self.pending.take().ok_or_else(Self::lost_buffer)?;
        let temp_path = self.temp_path.clone();
        let direct = self.direct;
        let length = self.written + pending.len() as u64;
        let (file, mut pending) = tokio::task::spawn_blocking(move || {
            let mut file = match file {
                Some(file) => file,
                None => create_file(&temp_path, direct)?,
            };
            if direct && last {
                std::io::Write::write_all(&mut file, pending.padded())?;
                file.set_len(length)?;
            } else {
                std::io::Write::write_all(&mut file, pending.content())?;
            }
            then(&file, &temp_path)?;
            Ok::<_, std::io::Error>((file, pending))
        })
        .await
        .map_err(|e| FileError::Body(e.to_string()))??;
        self.written = length;
        pending.clear();
        self.file = Some(file);
        self.pending = Some(pending);
        Ok(())
    }

    /// A batch that failed on its blocking thread took the buffer with it; the upload has
    /// already failed then, and this is never reached.
    fn lost_buffer() -> FileError {
        FileError::Body("tampon d'écriture perdu après une erreur".into())
    }

    /// Removes the temporary file after a failure (nothing under a final name was written).
    async fn discard(&mut self) {
        self.file = None;
        let _ = fs::remove_file(&self.temp_path).await;
    }
}

impl Drop for BatchedFile {
    fn drop(&mut self) {
        if let Some(buffer) = self.pending.take() {
            self.buffers.give_back(buffer);
        }
    }
}

impl FileStore {
    pub async fn open(root: impl Into<PathBuf>, max_size: u64) -> Result<FileStore, FileError> {
        let root = root.into();
        let temp = root.join("tmp");
        fs::create_dir_all(&temp).await?;
        let direct = direct_io_works(&temp).await;
        Ok(FileStore {
            root,
            max_size,
            keys: None,
            direct,
            buffers: BufferPool::default(),
        })
    }

    /// Whether documents are written with direct IO, bypassing the page cache.
    pub fn writes_directly(&self) -> bool {
        self.direct
    }

    /// Writes through the page cache even where direct IO works.
    pub fn without_direct_io(mut self) -> FileStore {
        self.direct = false;
        self
    }

    /// Seals every file stored from now on with keys wrapped by this key ring.
    pub fn with_keys(mut self, keys: KeyRing) -> FileStore {
        self.keys = Some(std::sync::Arc::new(keys));
        self
    }

    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, FileError> {
        // Keys are generated here (two hex levels then a UUID); refuse anything else so that a
        // forged key cannot walk the file system.
        let valid = key.len() < 80
            && key
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'/');
        if !valid || key.contains("..") {
            return Err(FileError::InvalidKey);
        }
        Ok(self.root.join(key))
    }

    /// Streams `body` to storage, hashing on the way; refuses it past the size limit.
    pub async fn store_stream<S, E>(&self, mut body: S) -> Result<StoredFile, FileError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let id = Uuid::now_v7().simple().to_string();
        let mut output =
            BatchedFile::new(self.root.join("tmp").join(&id), self.direct, &self.buffers);
        let result = async {
            let mut hasher = Sha256::new();
            let mut size: u64 = 0;
            let mut head = Vec::with_capacity(SNIFF_BYTES);
            let mut sealing = match &self.keys {
                Some(keys) => {
                    let (header, sealer) = keys.sealer()?;
                    output.write(&header).await?;
                    Some((sealer, Vec::with_capacity(sealing::SEGMENT_SEALED)))
                }
                None => None,
            };
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| FileError::Body(e.to_string()))?;
                size += chunk.len() as u64;
                if size > self.max_size {
                    return Err(FileError::TooLarge {
                        limit: self.max_size,
                    });
                }
                if head.len() < SNIFF_BYTES {
                    let take = (SNIFF_BYTES - head.len()).min(chunk.len());
                    head.extend_from_slice(&chunk[..take]);
                }
                hasher.update(&chunk);
                match &mut sealing {
                    None => output.write(&chunk).await?,
                    Some((sealer, segment)) => {
                        let mut rest: &[u8] = &chunk;
                        while !rest.is_empty() {
                            // A full segment is sealed only once more data proves it is not
                            // the last one.
                            if segment.len() == sealing::SEGMENT {
                                sealer.seal_next(segment)?;
                                output.write(segment).await?;
                                segment.clear();
                            }
                            let take = (sealing::SEGMENT - segment.len()).min(rest.len());
                            segment.extend_from_slice(&rest[..take]);
                            rest = &rest[take..];
                        }
                    }
                }
            }
            if size == 0 {
                return Err(FileError::Empty);
            }
            let wrapped_key = match sealing {
                Some((mut sealer, mut segment)) => {
                    sealer.seal_last(&mut segment)?;
                    output.write(&segment).await?;
                    Some(sealer.wrapped_key)
                }
                None => None,
            };
            let sha256 = hex::encode(hasher.finalize());
            let storage_key = format!("{}/{}/{}", &sha256[..2], &sha256[2..4], id);
            output.finish(self.path_of(&storage_key)?).await?;
            Ok(StoredFile {
                storage_key,
                size,
                sha256,
                head,
                wrapped_key,
            })
        }
        .await;
        if result.is_err() {
            output.discard().await;
        }
        result
    }

    pub async fn store_bytes(&self, bytes: Vec<u8>) -> Result<StoredFile, FileError> {
        let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(bytes))]);
        self.store_stream(stream).await
    }

    /// A blocking reader of a stored file's content (its plaintext, when it is sealed).
    pub fn reader(
        &self,
        key: &str,
        wrapped_key: Option<&str>,
    ) -> Result<Box<dyn std::io::Read + Send>, FileError> {
        let file = std::io::BufReader::with_capacity(
            sealing::SEGMENT_SEALED + 64,
            std::fs::File::open(self.path_of(key)?)?,
        );
        match wrapped_key {
            None => Ok(Box::new(file)),
            Some(wrapped) => {
                let keys = self.keys.as_ref().ok_or_else(|| {
                    SealError::UnknownMasterKey("aucune clé maîtresse configurée".into())
                })?;
                Ok(Box::new(keys.open(wrapped, file)?))
            }
        }
    }

    /// A stored file's content as a stream of chunks, read and unsealed on a blocking thread:
    /// memory stays at a few segments whatever the size. A tampered file ends the stream with
    /// an error rather than with wrong bytes.
    pub fn stream(
        &self,
        key: &str,
        wrapped_key: Option<&str>,
    ) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static, FileError> {
        let mut reader = self.reader(key, wrapped_key)?;
        let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
        tokio::task::spawn_blocking(move || loop {
            let mut buffer = vec![0u8; sealing::SEGMENT];
            match reader.read(&mut buffer) {
                Ok(0) => return,
                Ok(count) => {
                    buffer.truncate(count);
                    if sender.blocking_send(Ok(Bytes::from(buffer))).is_err() {
                        return; // the client went away
                    }
                }
                Err(error) => {
                    let _ = sender.blocking_send(Err(error));
                    return;
                }
            }
        });
        Ok(futures_util::stream::unfold(
            receiver,
            |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) },
        ))
    }

    /// The whole content of a stored file (small files: tests, previews).
    pub async fn read(&self, key: &str, wrapped_key: Option<&str>) -> Result<Vec<u8>, FileError> {
        let mut reader = self.reader(key, wrapped_key)?;
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut reader, &mut out).map(|_| out)
        })
        .await
        .map_err(|e| FileError::Body(e.to_string()))?
        .map_err(FileError::from)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// The media type of a file from its first bytes; the declared type is only trusted when the
/// content does not contradict it.
pub fn sniff_media_type(head: &[u8], declared: Option<&str>) -> String {
    let sniffed = if head.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if head.starts_with(&[0x89, b'P', b'N', b'G']) {
        Some("image/png")
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if head.starts_with(b"GIF8") {
        Some("image/gif")
    } else if head.starts_with(b"PK\x03\x04") {
        // Office documents are zip files; keep a declared OOXML/ODF type, else call it zip.
        match declared {
            Some(d) if d.starts_with("application/vnd.") => None,
            _ => Some("application/zip"),
        }
    } else {
        None
    };
    match (sniffed, declared) {
        (Some(sniffed), _) => sniffed.to_string(),
        (None, Some(declared))
            if !declared.is_empty() && !is_active_content(declared) && declared.len() < 128 =>
        {
            declared
                .split(';')
                .next()
                .unwrap_or(declared)
                .trim()
                .to_ascii_lowercase()
        }
        _ => {
            if std::str::from_utf8(head).is_ok() {
                "text/plain".to_string()
            } else {
                "application/octet-stream".to_string()
            }
        }
    }
}

/// Types a browser would execute: never stored as such.
fn is_active_content(media_type: &str) -> bool {
    let lower = media_type.to_ascii_lowercase();
    lower.contains("html")
        || lower.contains("javascript")
        || lower.contains("svg")
        || lower.contains("xml")
}

/// A filename safe to store and to send back in Content-Disposition: no path, no control
/// characters, no leading dots, at most 180 characters.
pub fn sanitize_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| {
            if matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*' | ';') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let mut name: String = trimmed.chars().take(180).collect();
    if name.is_empty() {
        name = "document".to_string();
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_buffer_stays_aligned_and_pads_with_zeros() {
        let mut buffer = AlignedBuffer::new(4 * DIRECT_ALIGNMENT);
        let at = buffer.content().as_ptr() as usize;
        assert_eq!(at % DIRECT_ALIGNMENT, 0);
        assert_eq!(buffer.fill(&[7; 5000]), 5000);
        // More than is left: it takes what fits, without moving the content.
        assert_eq!(buffer.fill(&[9; 20000]), 4 * DIRECT_ALIGNMENT - 5000);
        assert!(buffer.is_full());
        assert_eq!(buffer.content().as_ptr() as usize, at);
        buffer.clear();
        assert_eq!(buffer.fill(&[1; 10]), 10);
        let padded = buffer.padded();
        assert_eq!(padded.len(), DIRECT_ALIGNMENT);
        assert_eq!(&padded[..10], &[1; 10]);
        assert!(padded[10..].iter().all(|&b| b == 0));
        assert_eq!(padded.as_ptr() as usize, at);
    }

    #[tokio::test]
    async fn write_buffers_are_reused_and_the_pool_stays_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::open(dir.path(), 1 << 30).await.expect("open");
        for round in 0..3u8 {
            let content = vec![round; WRITE_BATCH + 10];
            let stored = store.store_bytes(content.clone()).await.expect("stored");
            assert_eq!(stored.sha256, hex::encode(Sha256::digest(&content)));
            assert_eq!(
                store.read(&stored.storage_key, None).await.expect("read"),
                content
            );
            // The one buffer of each upload came back, and went out again to the next.
            assert_eq!(store.buffers.kept(), 1);
        }
        let pool = BufferPool::default();
        let taken: Vec<AlignedBuffer> = (0..POOLED_BUFFERS + 4).map(|_| pool.take()).collect();
        for buffer in taken {
            pool.give_back(buffer);
        }
        assert_eq!(pool.kept(), POOLED_BUFFERS);
    }

    #[tokio::test]
    async fn streams_hashes_and_limits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStore::open(dir.path(), 10).await.expect("open");
        let stored = store.store_bytes(b"abc".to_vec()).await.expect("stored");
        assert_eq!(
            stored.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(stored.wrapped_key, None, "no key ring: stored in clear");
        assert_eq!(
            store.read(&stored.storage_key, None).await.expect("read"),
            b"abc"
        );
        assert!(matches!(
            store.store_bytes(vec![0; 11]).await,
            Err(FileError::TooLarge { limit: 10 })
        ));
        assert!(matches!(
            store.store_bytes(Vec::new()).await,
            Err(FileError::Empty)
        ));
        // Nothing is left behind by refused uploads.
        let leftovers = std::fs::read_dir(dir.path().join("tmp"))
            .expect("tmp")
            .count();
        assert_eq!(leftovers, 0);
        assert!(matches!(
            store.read("../../etc/passwd", None).await,
            Err(FileError::InvalidKey)
        ));
    }

    #[tokio::test]
    async fn files_larger_than_a_write_batch_round_trip_and_refusals_leave_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let content: Vec<u8> = (0..WRITE_BATCH * 5 / 2).map(|i| (i % 251) as u8).collect();
        let chunks = || {
            futures_util::stream::iter(
                content
                    .chunks(10_000)
                    .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
                    .collect::<Vec<_>>(),
            )
        };
        for keys in [
            None,
            Some(KeyRing::new(&new_master_key(), &[]).expect("keys")),
        ] {
            let sealed = keys.is_some();
            let mut store = FileStore::open(dir.path(), content.len() as u64)
                .await
                .expect("open");
            if let Some(keys) = keys {
                store = store.with_keys(keys);
            }
            let stored = store.store_stream(chunks()).await.expect("stored");
            assert_eq!(stored.size, content.len() as u64);
            assert_eq!(stored.sha256, hex::encode(Sha256::digest(&content)));
            assert_eq!(stored.wrapped_key.is_some(), sealed);
            let back = store
                .read(&stored.storage_key, stored.wrapped_key.as_deref())
                .await
                .expect("read");
            assert!(
                back == content,
                "content read back differs (sealed: {sealed})"
            );
            // Refused after several batches were written: the temporary file goes too.
            let small = FileStore::open(dir.path(), (WRITE_BATCH * 2) as u64)
                .await
                .expect("open");
            assert!(matches!(
                small.store_stream(chunks()).await,
                Err(FileError::TooLarge { .. })
            ));
            let leftovers = std::fs::read_dir(dir.path().join("tmp"))
                .expect("tmp")
                .count();
            assert_eq!(leftovers, 0);
        }
    }

    /// Stores `content` as a network would hand it over: in chunks of `chunk` bytes.
    async fn store_in_chunks(store: &FileStore, content: &[u8], chunk: usize) -> StoredFile {
        let chunks: Vec<Result<Bytes, std::io::Error>> = content
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        store
            .store_stream(futures_util::stream::iter(chunks))
            .await
            .expect("stored")
    }

    /// Direct writes cover whole blocks: every length around a block or a batch boundary must
    /// come back exactly, with a file on disk of exactly its length, written directly or not.
    #[tokio::test]
    async fn lengths_around_block_and_batch_boundaries_round_trip_in_both_write_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let direct = FileStore::open(dir.path(), 4 << 20).await.expect("open");
        if cfg!(target_os = "linux")
            && std::env::var("INFOPARQUET_TEST_REQUIRE_SERVICES").as_deref() == Ok("1")
        {
            assert!(
                direct.writes_directly(),
                "direct IO is expected on this test machine's file system"
            );
        }
        let buffered = FileStore::open(dir.path(), 4 << 20)
            .await
            .expect("open")
            .without_direct_io();
        assert!(!buffered.writes_directly());
        let lengths = [
            1,
            DIRECT_ALIGNMENT - 1,
            DIRECT_ALIGNMENT,
            DIRECT_ALIGNMENT + 1,
            WRITE_BATCH - 1,
            WRITE_BATCH,
            WRITE_BATCH + 1,
            // Sealed, these end one segment past a batch, or a block short of it.
            17 * sealing::SEGMENT,
            31 * sealing::SEGMENT + 1,
            3 * WRITE_BATCH + 12_345,
        ];
        let keys = KeyRing::new(&new_master_key(), &[]).expect("keys");
        for store in [&direct, &buffered] {
            for sealed in [false, true] {
                let store = if sealed {
                    store.clone().with_keys(keys.clone())
                } else {
                    store.clone()
                };
                for (length, chunk) in lengths
                    .iter()
                    .flat_map(|&length| [(length, 9_999), (length, 200_003)])
                {
                    let content: Vec<u8> = (0..length).map(|i| (i % 253) as u8).collect();
                    let stored = store_in_chunks(&store, &content, chunk).await;
                    let label = format!(
                        "{length} bytes in chunks of {chunk}, direct: {}, sealed: {sealed}",
                        store.writes_directly()
                    );
                    let on_disk = std::fs::metadata(dir.path().join(&stored.storage_key))
                        .expect("stored file")
                        .len() as usize;
                    let expected = if sealed {
                        let segments = length.div_ceil(sealing::SEGMENT);
                        sealing::HEADER
                            + length
                            + segments * (sealing::SEGMENT_SEALED - sealing::SEGMENT)
                    } else {
                        length
                    };
                    assert_eq!(on_disk, expected, "length on disk, {label}");
                    let back = store
                        .read(&stored.storage_key, stored.wrapped_key.as_deref())
                        .await
                        .expect("read");
                    assert!(back == content, "content read back differs, {label}");
                }
            }
        }
    }

    #[tokio::test]
    async fn sealed_files_never_reach_the_disk_in_clear() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = KeyRing::new(&new_master_key(), &[]).expect("keys");
        let store = FileStore::open(dir.path(), 1 << 20)
            .await
            .expect("open")
            .with_keys(keys);
        // Uneven network chunks crossing segment boundaries, ending exactly on one.
        let plain: Vec<u8> = b"PROCES-VERBAL "
            .iter()
            .copied()
            .cycle()
            .take(2 * sealing::SEGMENT)
            .collect();
        let stored = store_in_chunks(&store, &plain, 7_000).await;
        assert_eq!(stored.size, plain.len() as u64);
        assert_eq!(
            stored.sha256,
            hex::encode(Sha256::digest(&plain)),
            "hash of the plaintext"
        );
        assert_eq!(
            &stored.head[..14],
            b"PROCES-VERBAL ",
            "sniffing sees the plaintext"
        );
        let wrapped = stored.wrapped_key.clone().expect("sealed");
        let on_disk = std::fs::read(dir.path().join(&stored.storage_key)).expect("disk");
        assert!(!on_disk.windows(13).any(|w| w == b"PROCES-VERBAL"));
        assert_eq!(
            store
                .read(&stored.storage_key, Some(&wrapped))
                .await
                .expect("read"),
            plain
        );
        let streamed: Vec<u8> = store
            .stream(&stored.storage_key, Some(&wrapped))
            .expect("stream")
            .map(|chunk| chunk.expect("chunk").to_vec())
            .concat()
            .await;
        assert_eq!(streamed, plain);
        // Another platform's master key opens nothing.
        let stranger = FileStore::open(dir.path(), 1 << 20)
            .await
            .expect("open")
            .with_keys(KeyRing::new(&new_master_key(), &[]).expect("keys"));
        assert!(matches!(
            stranger.read(&stored.storage_key, Some(&wrapped)).await,
            Err(FileError::Seal(SealError::UnknownMasterKey(_)))
        ));
    }

    #[test]
    fn sniffing_and_names() {
        assert_eq!(
            sniff_media_type(b"%PDF-1.7", Some("text/html")),
            "application/pdf"
        );
        assert_eq!(sniff_media_type(b"<html>", Some("text/html")), "text/plain");
        assert_eq!(
            sniff_media_type(b"hello", Some("text/csv; charset=utf-8")),
            "text/csv"
        );
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(
            sanitize_filename("C:\\Users\\x\\PV n°12.pdf"),
            "PV n°12.pdf"
        );
        assert_eq!(sanitize_filename("..\u{0}"), "document");
        assert_eq!(sanitize_filename("a<b>.pdf"), "a_b_.pdf");
    }
}

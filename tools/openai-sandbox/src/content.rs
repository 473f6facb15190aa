//! Stored bytes (files, upload parts): small ones in memory, large ones
//! spilled to a data directory as they stream in, so the sandbox's memory
//! never grows with what clients upload (tests measure the client's memory
//! in the same process).

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// One stretch of stored bytes.
#[derive(Debug, Clone)]
pub enum Segment {
    Memory(Bytes),
    /// Removed from disk when the last holder drops it.
    Disk(Arc<DiskFile>),
}

#[derive(Debug)]
pub struct DiskFile {
    pub path: PathBuf,
    pub len: u64,
}

impl Drop for DiskFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Segment {
    pub fn len(&self) -> u64 {
        match self {
            Segment::Memory(b) => b.len() as u64,
            Segment::Disk(f) => f.len,
        }
    }
}

/// A file's content: segments read one after another (a completed upload
/// is its parts in order, never copied together).
#[derive(Debug, Clone, Default)]
pub struct Content {
    pub segments: Vec<Segment>,
}

impl Content {
    pub fn len(&self) -> u64 {
        self.segments.iter().map(Segment::len).sum()
    }

    /// A blocking reader over every segment in order.
    pub fn reader(&self) -> std::io::Result<Box<dyn Read + Send>> {
        let mut reader: Box<dyn Read + Send> = Box::new(std::io::empty());
        for segment in &self.segments {
            let next: Box<dyn Read + Send> = match segment {
                Segment::Memory(b) => Box::new(std::io::Cursor::new(b.clone())),
                Segment::Disk(f) => Box::new(BufReader::new(std::fs::File::open(&f.path)?)),
            };
            reader = Box::new(reader.chain(next));
        }
        Ok(reader)
    }

    /// The whole content (for `GET /files/{id}/content`; the sandbox's
    /// result files are small).
    pub fn to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.reader()?.read_to_end(&mut out)?;
        Ok(out)
    }
}

/// Receives a streamed body chunk by chunk.
pub struct ContentWriter {
    dir: PathBuf,
    threshold: usize,
    memory: Vec<u8>,
    disk: Option<(tokio::fs::File, PathBuf)>,
    len: u64,
    hasher: Sha256,
}

impl ContentWriter {
    pub fn new(dir: &Path, threshold: usize) -> Self {
        Self {
            dir: dir.to_owned(),
            threshold,
            memory: Vec::new(),
            disk: None,
            len: 0,
            hasher: Sha256::new(),
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.len += chunk.len() as u64;
        self.hasher.update(chunk);
        if self.disk.is_none() && self.memory.len() + chunk.len() > self.threshold {
            tokio::fs::create_dir_all(&self.dir).await?;
            let path = self.dir.join(crate::ids::new_id("blob_"));
            let mut file = tokio::fs::File::create(&path).await?;
            file.write_all(&self.memory).await?;
            self.memory = Vec::new();
            self.disk = Some((file, path));
        }
        match &mut self.disk {
            Some((file, _)) => file.write_all(chunk).await,
            None => {
                self.memory.extend_from_slice(chunk);
                Ok(())
            }
        }
    }

    /// The stored segment and the content's sha256 (hex).
    pub async fn finish(self) -> std::io::Result<(Segment, String)> {
        let sha = hex::encode(self.hasher.finalize());
        let segment = match self.disk {
            Some((mut file, path)) => {
                file.flush().await?;
                Segment::Disk(Arc::new(DiskFile {
                    path,
                    len: self.len,
                }))
            }
            None => Segment::Memory(Bytes::from(self.memory)),
        };
        Ok((segment, sha))
    }
}

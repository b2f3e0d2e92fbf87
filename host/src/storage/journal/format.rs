//! The journal's files: segments named `<number>.journal` (20 digits, so names sort by number),
//! each a header and then records.
//!
//! ```text
//! segment  = "wasmdoJ1" number:u64 record*
//! record   = length:u32 crc32:u32 payload          (length = bytes of payload; crc32 of payload)
//! payload  = path_length:u16 path seq:u64 page_size:u32 db_pages:u32 page*
//! page     = page_number:u32 head:u32 tail:u32 bytes[head] bytes[tail]
//! ```
//! All integers are little-endian. A page is stored without the longest run of zeros inside it:
//! its first `head` bytes, then `page_size - head - tail` zeros, then its last `tail` bytes. The
//! pages of a small database are mostly the free space between a B-tree page's cell pointers and
//! its cells, so a one-row write journals a few hundred bytes instead of two 4 KiB pages.
//!
//! Segments are written with zeros ahead of their records (preallocated): zeros where the next
//! record would start end the segment cleanly. Otherwise a record is complete when its whole
//! payload is present and its checksum matches. Reading stops at the first record that is not:
//! that is the torn tail a crash during a write leaves, and no batch in it was ever acknowledged
//! (replies wait for the fsync that covers them).

use std::path::{Path, PathBuf};

use crate::storage::commit::{Changes, WAL_FRAME_HEADER, without_zeros};

const MAGIC: &[u8; 8] = b"wasmdoJ1";
/// Bytes of a segment's header.
pub(crate) const SEGMENT_HEADER: usize = 16;
const RECORD_HEADER: usize = 8;
/// Longest object path a record holds (the data directory's own names are far shorter).
const MAX_PATH: usize = u16::MAX as usize;

/// The file of segment `number` in `dir`.
pub(crate) fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.journal"))
}

/// The segments in `dir`, oldest first.
pub(crate) fn segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".journal"))
            .filter(|n| n.len() == 20)
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        found.push((number, entry.path()));
    }
    found.sort();
    Ok(found)
}

/// A segment's header.
pub(crate) fn segment_header(number: u64) -> [u8; SEGMENT_HEADER] {
    let mut header = [0; SEGMENT_HEADER];
    header[..8].copy_from_slice(MAGIC);
    header[8..].copy_from_slice(&number.to_le_bytes());
    header
}

/// Appends one record holding `changes` to `out`.
pub(crate) fn encode(changes: &Changes, out: &mut Vec<u8>) {
    let path = changes.object.as_bytes();
    let path = &path[..path.len().min(MAX_PATH)];
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER]);
    out.extend_from_slice(&(path.len() as u16).to_le_bytes());
    out.extend_from_slice(path);
    out.extend_from_slice(&changes.seq.to_le_bytes());
    out.extend_from_slice(&changes.page_size.to_le_bytes());
    out.extend_from_slice(&changes.db_pages.to_le_bytes());
    for (number, page) in changes.pages() {
        let (head, tail) = without_zeros(page);
        out.extend_from_slice(&number.to_le_bytes());
        out.extend_from_slice(&(head.len() as u32).to_le_bytes());
        out.extend_from_slice(&(tail.len() as u32).to_le_bytes());
        out.extend_from_slice(head);
        out.extend_from_slice(tail);
    }
    let payload = &out[start + RECORD_HEADER..];
    let length = u32::try_from(payload.len()).expect("a record is under 4 GiB");
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&length.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// What reading a segment found.
pub(crate) struct Segment {
    pub(crate) records: Vec<Changes>,
    /// Where the last complete record ends.
    pub(crate) end: usize,
    /// Bytes after the last complete record (a torn tail), with the reason reading stopped.
    pub(crate) torn: Option<(u64, String)>,
}

/// Reads every complete record of a segment's bytes. A bad header is an error (the file is not a
/// segment); anything wrong after it ends the segment there (see the module docs).
pub(crate) fn decode(bytes: &[u8], number: u64) -> Result<Segment, String> {
    if bytes.len() < SEGMENT_HEADER {
        // created, but the header never reached the disk: nothing in it was acknowledged
        return Ok(Segment {
            records: Vec::new(),
            end: 0,
            torn: (!bytes.is_empty()).then(|| (bytes.len() as u64, "a short header".into())),
        });
    }
    if &bytes[..8] != MAGIC || bytes[8..16] != number.to_le_bytes() {
        return Err(format!("segment {number} has a foreign header"));
    }
    let mut records = Vec::new();
    let mut at = SEGMENT_HEADER;
    let torn = loop {
        let rest = &bytes[at..];
        if rest.iter().all(|b| *b == 0) {
            // the end, or the zeros written ahead of the records
            break None;
        }
        match decode_record(rest) {
            Ok((changes, used)) => {
                records.push(changes);
                at += used;
            }
            Err(reason) => break Some((rest.len() as u64, reason)),
        }
    };
    Ok(Segment {
        records,
        end: at,
        torn,
    })
}

fn decode_record(bytes: &[u8]) -> Result<(Changes, usize), String> {
    if bytes.len() < RECORD_HEADER {
        return Err("a record header cut short".into());
    }
    let length = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let Some(payload) = bytes.get(RECORD_HEADER..RECORD_HEADER + length) else {
        return Err(format!("a record of {length} bytes cut short"));
    };
    if crc32fast::hash(payload) != crc {
        return Err("a record whose checksum does not match".into());
    }
    let mut reader = Reader(payload);
    let path_length = usize::from(reader.u16()?);
    let path = std::str::from_utf8(reader.take(path_length)?)
        .map_err(|_| "a record whose path is not UTF-8")?
        .into();
    let seq = reader.u64()?;
    let page_size = reader.u32()?;
    let db_pages = reader.u32()?;
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(format!("a record with a page size of {page_size}"));
    }
    let frame_size = Changes::frame_size(page_size);
    let mut frames = Vec::new();
    while !reader.0.is_empty() {
        let number = reader.u32()?;
        let head = reader.u32()? as usize;
        let tail = reader.u32()? as usize;
        if head + tail > page_size as usize || number == 0 {
            return Err("a record with a page that does not fit its page size".into());
        }
        let start = frames.len();
        frames.resize(start + frame_size, 0);
        frames[start..start + 4].copy_from_slice(&number.to_be_bytes());
        let page = &mut frames[start + WAL_FRAME_HEADER..];
        page[..head].copy_from_slice(reader.take(head)?);
        let tail_at = page.len() - tail;
        page[tail_at..].copy_from_slice(reader.take(tail)?);
    }
    let changes = Changes {
        object: path,
        seq,
        page_size,
        db_pages,
        frames,
        alarm: None,
    };
    Ok((changes, RECORD_HEADER + length))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("a record shorter than its fields".into());
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(seq: u64, pages: &[(u32, u8)]) -> Changes {
        let mut frames = Vec::new();
        for (number, fill) in pages {
            let mut frame = vec![0u8; Changes::frame_size(512)];
            frame[..4].copy_from_slice(&number.to_be_bytes());
            frame[24..].fill(*fill);
            frames.extend_from_slice(&frame);
        }
        Changes {
            object: "objects/c/ab/ab12.sqlite".into(),
            seq,
            page_size: 512,
            db_pages: 7,
            frames,
            alarm: None,
        }
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_ends_the_segment() {
        let mut bytes = segment_header(3).to_vec();
        encode(&changes(1, &[(1, 0xaa), (2, 0xbb)]), &mut bytes);
        encode(&changes(2, &[(2, 0xcc)]), &mut bytes);
        let complete = bytes.len();
        encode(&changes(3, &[(5, 0xdd)]), &mut bytes);

        let segment = decode(&bytes, 3).unwrap();
        assert_eq!(segment.records.len(), 3);
        assert!(segment.torn.is_none());
        let pages: Vec<_> = segment.records[0]
            .pages()
            .map(|(n, page)| (n, page[0], page.len()))
            .collect();
        assert_eq!(pages, [(1, 0xaa, 512), (2, 0xbb, 512)]);
        assert_eq!(segment.records[1].seq, 2);
        assert_eq!(&*segment.records[1].object, "objects/c/ab/ab12.sqlite");
        assert_eq!(segment.records[1].db_pages, 7);

        // every cut inside the last record leaves the first two
        for cut in complete + 1..bytes.len() {
            let segment = decode(&bytes[..cut], 3).unwrap();
            assert_eq!(segment.records.len(), 2, "cut at {cut}");
            assert_eq!(segment.torn.as_ref().unwrap().0, (cut - complete) as u64);
        }
        // a flipped bit in the last record's payload: its checksum fails
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let segment = decode(&flipped, 3).unwrap();
        assert_eq!(segment.records.len(), 2);
        assert!(segment.torn.unwrap().1.contains("checksum"));
    }

    #[test]
    fn pages_round_trip_without_their_longest_zero_run() {
        let mut frames = Vec::new();
        let shapes: Vec<Vec<u8>> = vec![
            vec![0; 512],
            vec![0xff; 512],
            {
                let mut p = vec![0; 512];
                p[..10].fill(1);
                p[500..].fill(2);
                p[200] = 3; // splits the zeros: the longer run is elided
                p
            },
            {
                let mut p = vec![0; 512];
                p[0] = 9;
                p
            },
            {
                let mut p = vec![0; 512];
                p[511] = 9;
                p
            },
        ];
        for (i, page) in shapes.iter().enumerate() {
            let mut frame = vec![0u8; Changes::frame_size(512)];
            frame[..4].copy_from_slice(&(i as u32 + 1).to_be_bytes());
            frame[24..].copy_from_slice(page);
            frames.extend_from_slice(&frame);
        }
        let changes = Changes {
            object: "objects/c/ab/ab.sqlite".into(),
            seq: 9,
            page_size: 512,
            db_pages: 5,
            frames,
            alarm: None,
        };
        let mut bytes = segment_header(1).to_vec();
        encode(&changes, &mut bytes);
        assert!(
            bytes.len() < 512 + 600,
            "zeros are not stored: {}",
            bytes.len()
        );
        let segment = decode(&bytes, 1).unwrap();
        let back: Vec<(u32, Vec<u8>)> = segment.records[0]
            .pages()
            .map(|(n, p)| (n, p.to_vec()))
            .collect();
        let expected: Vec<(u32, Vec<u8>)> = shapes
            .into_iter()
            .enumerate()
            .map(|(i, p)| (i as u32 + 1, p))
            .collect();
        assert_eq!(back, expected);
    }

    #[test]
    fn zeros_after_the_records_end_a_segment_cleanly() {
        let mut bytes = segment_header(1).to_vec();
        encode(&changes(1, &[(1, 0xaa)]), &mut bytes);
        bytes.extend_from_slice(&[0; 4096]);
        let segment = decode(&bytes, 1).unwrap();
        assert_eq!(segment.records.len(), 1);
        assert!(segment.torn.is_none());
        // but not zeros followed by something else
        bytes.push(7);
        let segment = decode(&bytes, 1).unwrap();
        assert_eq!(segment.records.len(), 1);
        assert_eq!(segment.torn.unwrap().0, 4097);
    }

    #[test]
    fn headers_are_checked() {
        assert!(decode(&segment_header(4), 3).is_err());
        assert!(decode(b"not a journal at all", 3).is_err());
        let empty = decode(&[], 3).unwrap();
        assert!(empty.records.is_empty() && empty.torn.is_none());
        let short = decode(&segment_header(3)[..5], 3).unwrap();
        assert!(short.records.is_empty() && short.torn.is_some());
    }

    #[test]
    fn segments_sort_by_number_and_ignore_other_files() {
        let dir = tempfile::tempdir().unwrap();
        for n in [10, 2, 300] {
            std::fs::write(segment_path(dir.path(), n), b"").unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"").unwrap();
        std::fs::write(dir.path().join("12.journal"), b"").unwrap();
        let numbers: Vec<u64> = segments(dir.path())
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(numbers, [2, 10, 300]);
    }
}

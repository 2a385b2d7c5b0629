//! CRC-32C (Castagnoli), the checksum of every header slot, frame, checkpoint chunk and column
//! file (docs/FORMAT.md). Short inputs go to `crc32c`; inputs of [`LARGE`] bytes or more go to
//! `crc-fast`, whose carry-less-multiply folding runs about twice as fast over frames and chunks
//! (24 against 12 GB/s on the 2-core EPYC we bench on), and are joined with `crc32c_combine`.
//! Both compute the same function; the tests below hold them to each other.

use crc_fast::CrcAlgorithm;

/// Inputs from this length on take the fast path; below it the combine costs more than it saves.
const LARGE: usize = 16 << 10;

/// CRC-32C of `data`.
pub(crate) fn of(data: &[u8]) -> u32 {
    append(0, data)
}

/// CRC-32C of the bytes whose CRC-32C is `crc`, followed by `data`.
pub(crate) fn append(crc: u32, data: &[u8]) -> u32 {
    if data.len() < LARGE {
        return crc32c::crc32c_append(crc, data);
    }
    let tail = crc_fast::checksum(CrcAlgorithm::Crc32Iscsi, data) as u32;
    if crc == 0 {
        // Combining a crc of 0 with `tail` gives `tail` back, whatever bytes the 0 was of.
        return tail;
    }
    crc32c::crc32c_combine(crc, tail, data.len())
}

/// CRC-32C of `a` followed by `b_len` bytes whose CRC-32C is `b`.
pub(crate) fn combine(a: u32, b: u32, b_len: usize) -> u32 {
    crc32c::crc32c_combine(a, b, b_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_paths_compute_crc32c_at_every_length_and_split() {
        let data: Vec<u8> = (0..3 * LARGE as u32 + 77)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert_eq!(of(b"123456789"), 0xe306_9283, "the catalogue's check value");
        for len in [
            0,
            1,
            63,
            LARGE - 1,
            LARGE,
            LARGE + 1,
            2 * LARGE + 5,
            data.len(),
        ] {
            let want = crc32c::crc32c(&data[..len]);
            assert_eq!(of(&data[..len]), want, "length {len}");
            for split in [0, 1, len / 3, len.saturating_sub(LARGE), len] {
                let split = split.min(len);
                let head = of(&data[..split]);
                assert_eq!(
                    append(head, &data[split..len]),
                    want,
                    "{len} split at {split}"
                );
            }
        }
    }
}

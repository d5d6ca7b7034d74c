//! LEB128 varints and zigzag signed numbers: the integers of the binary manifest format take
//! one byte when small (a size under 128, a date equal to the previous one) and never more
//! than ten.

use std::io::Read;

use super::binary::DecodeError;

/// Appends `value` as a varint: seven bits a byte, the high bit set on all but the last.
pub fn put(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a signed number, zigzag-coded so that small negative numbers stay short too.
pub fn put_signed(out: &mut Vec<u8>, value: i64) {
    put(out, zigzag(value));
}

pub fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

pub fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Reads one varint; more than ten bytes, or bits beyond 64, mean damaged input.
pub fn get(input: &mut impl Read) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = byte(input)?;
        let bits = u64::from(byte & 0x7f);
        if shift == 63 && bits > 1 {
            return Err(DecodeError::Invalid("a number longer than 64 bits"));
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError::Invalid("a number longer than 64 bits"))
}

pub fn get_signed(input: &mut impl Read) -> Result<i64, DecodeError> {
    get(input).map(unzigzag)
}

/// Reads one byte; the end of the stream here means the manifest was cut short.
pub fn byte(input: &mut impl Read) -> Result<u8, DecodeError> {
    let mut one = [0u8; 1];
    exact(input, &mut one)?;
    Ok(one[0])
}

/// Fills `buf`, or says the manifest was cut short.
pub fn exact(input: &mut impl Read, buf: &mut [u8]) -> Result<(), DecodeError> {
    input.read_exact(buf).map_err(DecodeError::from_io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_at_the_edges() {
        for value in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX - 1, u64::MAX] {
            let mut buf = Vec::new();
            put(&mut buf, value);
            assert!(buf.len() <= 10);
            assert_eq!(get(&mut buf.as_slice()).unwrap(), value);
        }
        for value in [0, -1, 1, -64, 64, i64::MIN, i64::MAX] {
            let mut buf = Vec::new();
            put_signed(&mut buf, value);
            assert_eq!(get_signed(&mut buf.as_slice()).unwrap(), value);
        }
    }

    #[test]
    fn an_overlong_or_cut_number_is_an_error() {
        let overlong = [0xffu8; 11];
        assert!(matches!(
            get(&mut overlong.as_slice()),
            Err(DecodeError::Invalid(_))
        ));
        let cut = [0x80u8];
        assert!(matches!(
            get(&mut cut.as_slice()),
            Err(DecodeError::Truncated)
        ));
        let too_big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(get(&mut too_big.as_slice()).is_err());
    }
}

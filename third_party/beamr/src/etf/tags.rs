//! ETF wire tag constants.

pub const VERSION: u8 = 131;
pub const SMALL_INTEGER_EXT: u8 = 97;
pub const INTEGER_EXT: u8 = 98;
pub const NEW_FLOAT_EXT: u8 = 70;
pub const COMPRESSED_EXT: u8 = 80;
pub const ATOM_EXT: u8 = 100;
pub const ATOM_UTF8_EXT: u8 = 118;
pub const SMALL_ATOM_UTF8_EXT: u8 = 119;
pub const SMALL_TUPLE_EXT: u8 = 104;
pub const LARGE_TUPLE_EXT: u8 = 105;
pub const NIL_EXT: u8 = 106;
pub const STRING_EXT: u8 = 107;
pub const LIST_EXT: u8 = 108;
pub const BINARY_EXT: u8 = 109;
pub const SMALL_BIG_EXT: u8 = 110;
pub const LARGE_BIG_EXT: u8 = 111;
pub const EXPORT_EXT: u8 = 113;
pub const MAP_EXT: u8 = 116;
pub const PID_EXT: u8 = 103;
pub const NEW_PID_EXT: u8 = 88;
pub const REFERENCE_EXT: u8 = 114;
pub const NEWER_REFERENCE_EXT: u8 = 90;

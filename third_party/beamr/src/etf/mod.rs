//! External term format (ETF) encoding and runtime decoding support.

pub mod decode;
pub mod encode;
pub mod tags;

/// Global atom table — the shared vocabulary of the running system.
pub mod table;

pub use table::{Atom, AtomTable};

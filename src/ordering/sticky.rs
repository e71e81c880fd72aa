//! Sticky keys: each ordered key remembers the consumer that last took it,
//! so its next message goes there again while that consumer is a candidate
//! and has room (what it cached about the key is still warm); otherwise the
//! routing function chooses, as for any message.
//!
//! The memory is bounded: past [`STICKY_MAX`] keys it starts over (a key
//! forgotten this way only loses its preference, never its order).

use std::collections::HashMap;
use std::sync::Arc;

/// Keys remembered at most.
pub(crate) const STICKY_MAX: usize = 1 << 17;

#[derive(Default)]
pub(crate) struct StickyKeys {
    enabled: bool,
    last: HashMap<Arc<str>, Arc<str>>,
}

impl StickyKeys {
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            last: HashMap::new(),
        }
    }

    /// The consumer `key` should go to, if it has one.
    pub(crate) fn preferred(&self, key: Option<&str>) -> Option<&str> {
        if !self.enabled {
            return None;
        }
        self.last.get(key?).map(|id| &**id)
    }

    /// `key`'s message went to consumer `id`.
    pub(crate) fn took(&mut self, key: Option<&Arc<str>>, id: &Arc<str>) {
        let (true, Some(key)) = (self.enabled, key) else {
            return;
        };
        if self.last.get(&**key).is_some_and(|last| last == id) {
            return;
        }
        if self.last.len() >= STICKY_MAX {
            self.last.clear();
        }
        self.last.insert(Arc::clone(key), Arc::clone(id));
    }
}

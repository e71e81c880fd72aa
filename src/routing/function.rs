//! Routing functions: content-addressed, built-in or host-supplied.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::message::Message;
use crate::routing::builtin::Builtin;
use crate::routing::view::ConsumerState;

/// A host routing function: picks a consumer id among the eligible ones, or
/// none. A panic is contained and reported as `crashed(hash)`.
pub type RouteFn =
    dyn Fn(&Arc<Message>, &[ConsumerState]) -> Option<String> + Send + Sync + 'static;

pub(crate) enum Kind {
    Builtin(Builtin),
    Host(HostCall),
}

/// A host function's callback, held until the runtime shuts down (or the
/// last holder lets go, if sooner): whoever still holds the function after
/// that — a group handle, a routing handle — holds no host state.
pub(crate) struct HostCall(parking_lot::Mutex<Option<Arc<RouteFn>>>);

impl HostCall {
    /// The callback, unless released. A caller keeps its clone for the
    /// call: a call in progress keeps the callback alive until it returns.
    pub(crate) fn get(&self) -> Option<Arc<RouteFn>> {
        self.0.lock().clone()
    }

    /// Drop the callback (its host `free_user` runs here, or when a call
    /// still in progress returns).
    fn release(&self) {
        let released = self.0.lock().take();
        drop(released);
    }
}

pub(crate) struct FunctionInner {
    pub(crate) hash: u64,
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// A call of this function timed out and has not returned yet: calls
    /// never overlap, so evaluations fail fast until it does.
    pub(crate) abandoned_call: AtomicBool,
}

impl FunctionInner {
    /// Release a host function's callback (runtime shutdown).
    pub(crate) fn release_host(&self) {
        if let Kind::Host(call) = &self.kind {
            call.release();
        }
    }
}

/// A loaded routing function. Its identity is the 64-bit content hash of its
/// identity bytes; cloning shares it.
#[derive(Clone)]
pub struct RoutingFunction {
    pub(crate) inner: Arc<FunctionInner>,
}

/// The 64-bit content hash used for routing-function identity.
#[must_use]
pub fn content_hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

impl RoutingFunction {
    /// A built-in router. Built-ins are library code: they run inline in the
    /// conversation (no supervision hop), and are content-addressed by their
    /// name and parameter.
    #[must_use]
    pub fn builtin(builtin: Builtin) -> Self {
        let name = builtin.identity();
        Self {
            inner: Arc::new(FunctionInner {
                hash: content_hash(name.as_bytes()),
                name,
                kind: Kind::Builtin(builtin),
                abandoned_call: AtomicBool::new(false),
            }),
        }
    }

    /// A host function, not yet interned. Use [`crate::Runtime::load_routing`]
    /// so identical identity bytes yield the same loaded function.
    pub(crate) fn host(identity: &[u8], name: String, f: Box<RouteFn>) -> Self {
        Self {
            inner: Arc::new(FunctionInner {
                hash: content_hash(identity),
                name,
                kind: Kind::Host(HostCall(parking_lot::Mutex::new(Some(Arc::from(f))))),
                abandoned_call: AtomicBool::new(false),
            }),
        }
    }

    /// The content hash.
    #[must_use]
    pub fn hash(&self) -> u64 {
        self.inner.hash
    }

    /// A readable name (the built-in's name, or the one given at load).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether two handles are the same loaded function.
    #[must_use]
    pub fn same_as(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl std::fmt::Debug for RoutingFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutingFunction")
            .field("name", &self.inner.name)
            .field("hash", &format_args!("{:#018x}", self.inner.hash))
            .finish()
    }
}

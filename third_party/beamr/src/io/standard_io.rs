//! Standard group-leader I/O server helpers.

use std::time::Duration;

use crate::atom::{Atom, AtomTable};
use crate::io::{CompletionRing, IoOp, IoResult};
use crate::native::IoMessageFacility;
use crate::process::Process;
use crate::term::Term;
use crate::term::binary_ref::BinaryRef;
use crate::term::boxed::{Cons, Tuple};
use crate::term::heap_borrow::HeapBorrow;

const STDIN_FD: i32 = 0;
const STDOUT_FD: i32 = 1;
const CURRENT_POSITION: u64 = u64::MAX;
const READ_CHUNK_SIZE: usize = 1024;
const MAX_LINE_BYTES: usize = 64 * 1024;
const POLL_TIMEOUT: Duration = Duration::from_millis(10);

/// Runtime-owned standard I/O server state.
pub struct StandardIoServer {
    pid: u64,
    ring: std::sync::Arc<dyn CompletionRing>,
    atoms: StandardIoAtoms,
}

#[derive(Copy, Clone)]
struct StandardIoAtoms {
    io_request: Atom,
    io_reply: Atom,
    put_chars: Atom,
    get_line: Atom,
    get_until: Atom,
    unicode: Atom,
    request: Atom,
    eof: Atom,
}

impl StandardIoServer {
    /// Create a scheduler-owned standard I/O server process body.
    #[must_use]
    pub fn process(pid: u64) -> Process {
        let mut process = Process::new(pid, crate::process::heap::DEFAULT_HEAP_SIZE);
        process.set_group_leader(Term::pid(pid));
        process
    }

    /// Build server state for `pid` using the scheduler's completion ring.
    #[must_use]
    pub fn new(pid: u64, ring: std::sync::Arc<dyn CompletionRing>, atom_table: &AtomTable) -> Self {
        Self {
            pid,
            ring,
            atoms: StandardIoAtoms::new(atom_table),
        }
    }

    /// Return the pid owned by this standard I/O server.
    #[must_use]
    pub const fn pid(&self) -> u64 {
        self.pid
    }

    /// OS thread names of the backing completion ring's LIVE worker pool.
    ///
    /// The standard-IO ring is owned inside this server, so the service
    /// inventory (spec §5) reads its worker names through here.
    #[must_use]
    pub fn worker_thread_names(&self) -> Vec<String> {
        self.ring.worker_thread_names()
    }

    /// Worker threads the backing ring was asked to run (spec §5
    /// `configured`).
    #[must_use]
    pub fn requested_worker_count(&self) -> usize {
        self.ring.requested_worker_count()
    }

    /// Stop and join the backing completion ring (spec §4). The owning
    /// scheduler calls this at shutdown so the standard-IO ring's workers are
    /// joined rather than leaked until the last `Arc` drop, making a
    /// post-shutdown inventory truthful. Idempotent: the ring's own `shutdown`
    /// no-ops on a second call.
    pub fn shutdown(&self) {
        self.ring.shutdown();
    }

    /// Drain and handle all currently arrived `io_request` messages.
    pub fn run_available(&self, process: &mut Process, messages: &dyn IoMessageFacility) {
        process.mailbox_mut().drain_arrival();
        while let Some(message) = process.mailbox_mut().remove_current_message() {
            self.handle_message(process, message, messages);
        }
    }

    fn handle_message(
        &self,
        process: &mut Process,
        message: Term,
        messages: &dyn IoMessageFacility,
    ) {
        let Some(tuple) = Tuple::new(message) else {
            return;
        };
        if tuple.arity() != 4 || tuple.get(0) != Some(Term::atom(self.atoms.io_request)) {
            return;
        }
        let Some(from) = tuple.get(1).and_then(Term::as_pid) else {
            return;
        };
        let Some(reply_as) = tuple.get(2) else {
            return;
        };
        let Some(request) = tuple.get(3) else {
            return;
        };
        let result = self.handle_request(process, request);
        if let Some(reply) = self.build_reply(process, reply_as, result) {
            let _sent = messages.send_message(self.pid, from, reply);
        }
    }

    fn handle_request(&self, process: &mut Process, request: Term) -> Term {
        // Own every iodata argument before touching `process` mutably: the
        // witness borrow ends with the `Vec`, so no heap slice reaches the
        // reply path.
        let bytes_of =
            |term: Option<Term>| term.and_then(|t| iodata_bytes(t, process.borrow_terms()));
        let Some(tuple) = Tuple::new(request) else {
            return self.error_request(process);
        };
        if tuple.arity() < 3 {
            return self.error_request(process);
        }
        let Some(kind) = tuple.get(0).and_then(Term::as_atom) else {
            return self.error_request(process);
        };
        let encoding = tuple.get(1);
        if encoding != Some(Term::atom(self.atoms.unicode)) {
            return self.error_request(process);
        }
        if kind == self.atoms.put_chars {
            let chars = bytes_of(tuple.get(2));
            return chars
                .and_then(|bytes| self.write_stdout(&bytes).then_some(Term::atom(Atom::OK)))
                .unwrap_or_else(|| self.error_request(process));
        }
        if kind == self.atoms.get_line {
            let prompt = bytes_of(tuple.get(2));
            return prompt
                .and_then(|prompt| self.get_line(process, &prompt, b'\n'))
                .unwrap_or_else(|| self.error_request(process));
        }
        if kind == self.atoms.get_until {
            let delimiter = bytes_of(tuple.get(3))
                .and_then(|bytes| bytes.first().copied())
                .unwrap_or(b'\n');
            let prompt = bytes_of(tuple.get(2));
            return prompt
                .and_then(|prompt| self.get_line(process, &prompt, delimiter))
                .unwrap_or_else(|| self.error_request(process));
        }
        self.error_request(process)
    }

    fn write_stdout(&self, bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return true;
        }
        let op_id = self.ring.submit(IoOp::Write {
            fd: STDOUT_FD,
            data: bytes.to_vec(),
            offset: CURRENT_POSITION,
        });
        self.wait_for_completion(op_id).is_some_and(
            |result| matches!(result, IoResult::BytesWritten(written) if written == bytes.len()),
        )
    }

    fn get_line(&self, process: &mut Process, prompt: &[u8], delimiter: u8) -> Option<Term> {
        if !self.write_stdout(prompt) {
            return None;
        }
        let mut data = Vec::new();
        loop {
            let op_id = self.ring.submit(IoOp::Read {
                fd: STDIN_FD,
                buf_len: READ_CHUNK_SIZE,
                offset: CURRENT_POSITION,
            });
            let result = self.wait_for_completion(op_id)?;
            let IoResult::BytesRead(bytes_read, bytes) = result else {
                return None;
            };
            if bytes_read == 0 {
                return if data.is_empty() {
                    Some(Term::atom(self.atoms.eof))
                } else {
                    heap_alloc_binary(process, &data)
                };
            }
            let read_bytes = &bytes[..bytes_read.min(bytes.len())];
            if let Some(position) = read_bytes.iter().position(|byte| *byte == delimiter) {
                data.extend_from_slice(&read_bytes[..=position]);
                return heap_alloc_binary(process, &data);
            }
            data.extend_from_slice(read_bytes);
            if data.len() >= MAX_LINE_BYTES {
                return heap_alloc_binary(process, &data);
            }
        }
    }

    fn wait_for_completion(&self, op_id: u64) -> Option<IoResult> {
        loop {
            for completion in self.ring.poll_completions(POLL_TIMEOUT) {
                if completion.op_id == op_id {
                    return completion.result.ok();
                }
            }
        }
    }

    fn build_reply(&self, process: &mut Process, reply_as: Term, result: Term) -> Option<Term> {
        let elements = [Term::atom(self.atoms.io_reply), reply_as, result];
        heap_alloc_tuple(process, &elements)
    }

    fn error_request(&self, process: &mut Process) -> Term {
        let elements = [Term::atom(Atom::ERROR), Term::atom(self.atoms.request)];
        heap_alloc_tuple(process, &elements).unwrap_or(Term::atom(Atom::ERROR))
    }
}

impl StandardIoAtoms {
    fn new(atom_table: &AtomTable) -> Self {
        Self {
            io_request: atom_table.intern("io_request"),
            io_reply: atom_table.intern("io_reply"),
            put_chars: atom_table.intern("put_chars"),
            get_line: atom_table.intern("get_line"),
            get_until: atom_table.intern("get_until"),
            unicode: atom_table.intern("unicode"),
            request: atom_table.intern("request"),
            eof: atom_table.intern("eof"),
        }
    }
}

fn iodata_bytes(term: Term, heap: HeapBorrow<'_>) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    collect_iodata(term, &mut bytes, heap).then_some(bytes)
}

fn collect_iodata(term: Term, out: &mut Vec<u8>, heap: HeapBorrow<'_>) -> bool {
    if term.is_nil() {
        return true;
    }
    if let Some(binary) = BinaryRef::new(term) {
        out.extend_from_slice(binary.as_bytes(heap));
        return true;
    }
    if let Some(byte) = term
        .as_small_int()
        .and_then(|value| u8::try_from(value).ok())
    {
        out.push(byte);
        return true;
    }
    let Some(cons) = Cons::new(term) else {
        return false;
    };
    collect_iodata(cons.head(), out, heap) && collect_iodata(cons.tail(), out, heap)
}

fn heap_alloc_tuple(process: &mut Process, elements: &[Term]) -> Option<Term> {
    let words = process.heap_mut().alloc_slice(1 + elements.len()).ok()?;
    crate::term::boxed::write_tuple(words, elements)
}

fn heap_alloc_binary(process: &mut Process, bytes: &[u8]) -> Option<Term> {
    let word_count = crate::term::shared_binary::alloc_binary_word_count(bytes.len());
    // A large result lands as a refcounted ProcBin; mark the allocation so the
    // GC release walk drops its Arc. See `process::heap::AllocKind`.
    let heap = process
        .heap_mut()
        .alloc_slice_maybe_refcounted(word_count)
        .ok()?;
    crate::term::shared_binary::alloc_binary(heap, bytes)
}

#[cfg(test)]
mod gc_release_tests {
    use super::*;
    use crate::term::boxed::ProcBin;

    #[test]
    fn large_io_result_binary_is_released_by_minor_gc() {
        let mut process = Process::new(1, 32);
        let bytes = vec![0x5A; 4096];

        let term = heap_alloc_binary(&mut process, &bytes).expect("binary allocates");
        let observer = ProcBin::new(term)
            .expect("a large io binary lands as a refc binary")
            .shared_binary();
        assert_eq!(observer.ref_count(), 2);

        crate::gc::collect_minor(&mut process).expect("minor GC succeeds");

        assert_eq!(
            observer.ref_count(),
            1,
            "GC must release the io binary's shared-bytes Arc"
        );
    }
}

//! Random sequences of C-ABI calls (see `sequence.rs`), built with
//! AddressSanitizer: no crash, no UB, no leak, and every invariant of
//! `sequence::run` on every input. A `user` pointer that was not freed when
//! `liminal_runtime_free` returned fails the input with its callback's kind.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod sequence;

fuzz_target!(|data: &[u8]| {
    let run = sequence::run(data);
    let leaked = run.leaked_at_free();
    assert!(
        leaked.is_empty(),
        "callback users not freed when liminal_runtime_free returned: {leaked:?}; \
         freed later (kind, thread): {:?}",
        run.late()
    );
});

//! The allocator, and the calls that ask the allocators to give memory back.
//!
//! **Reviewed `unsafe`:** besides `crates/tsa/src/kernel.rs`, the only `unsafe` in medsign is
//! here: a call of mimalloc's `mi_collect` and one of glibc's `malloc_trim`, C functions that take
//! a number and no pointer and only hand memory the allocators hold free back to the kernel.
//! Nothing medsign holds is touched.

/// mimalloc: the TSA and the signing paths build and drop many small DER buffers per request;
/// glibc's malloc spent about 14 % of a P-256 timestamp load in malloc/free (issue #20, perf).
/// Built without transparent huge pages (`no_thp`): with them its arenas took 2 MiB pages, and an
/// idle server held 49 MB instead of 34 MB (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Return to the kernel what mimalloc holds free, at once. mimalloc purges freed memory only when
/// it is next called, a second or more after the free: a server that goes idle after start-up
/// keeps what start-up freed resident for as long as it stays idle — about 5 MB (issue #20,
/// goal 5). Collects what the calling thread freed, and the free space of every arena (unless
/// another thread is purging an arena at that moment: mimalloc then skips it rather than wait).
/// Called once the server listens, and after every Argon2id hash has freed its 19 MiB
/// (`medsign_directory::apps::release_memory_after_hashing`).
pub(crate) fn release_free_memory() {
    // SAFETY: `mi_collect` takes a plain `bool` and no pointer, and returns nothing. It works on
    // the calling thread's own heap and on the arenas, which mimalloc shares between threads
    // through its own atomics, as it does on every allocation; it frees only blocks that are
    // free already. It is `unsafe` here only because every foreign function is.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_collect(true)
    };
    // what C code (SQLite, aws-lc) freed is in glibc's heaps, one per thread that allocated:
    // the thread that generated the first start's RSA keys kept 0.5 MB of them resident
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes a plain `size_t` (the bytes to leave at the top of each heap)
    // and no pointer; it takes each glibc heap's own lock and gives back only pages that hold no
    // allocated chunk.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_freed_before_a_collection_can_be_allocated_again() {
        // a collection between frees and allocations on several threads leaves the allocator
        // consistent: what was written reads back, whatever mimalloc purged in between
        let workers: Vec<_> = (0..4u8)
            .map(|t| {
                std::thread::spawn(move || {
                    for round in 0..50u8 {
                        let big: Vec<Vec<u8>> = (0..64).map(|i| vec![t ^ round ^ i as u8; 4096 + i * 97]).collect();
                        release_free_memory();
                        for (i, v) in big.iter().enumerate() {
                            assert!(v.iter().all(|b| *b == t ^ round ^ i as u8));
                        }
                        drop(big);
                        release_free_memory();
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker");
        }
    }
}

//! The engine every class runs on and the linker every instance is made with: the linker
//! composes every capability's `add_to_linker` (WASI, `wasi:http` outgoing requests, and the
//! `wasmdo:object` capability hosts). The stub imports of classes that call other objects are
//! linked per class, into a clone of this linker, when the class is inspected (`inspect`).

use std::sync::Arc;

use wasmtime::component::Linker;
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::functions::FunctionCache;
use crate::error::{BoxError, StartError};
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::rpc::calls;
use crate::state::ObjectState;
use crate::storage::{self, StorageView};
use crate::{alarms, event_loop, object, outbound, websockets};

/// Bytes of each table slot whose written pages stay resident, zeroed in place, when its instance
/// is dropped (a table of a few thousand functions; larger ones are unmapped past this).
const TABLE_KEEP_RESIDENT_BYTES: usize = 64 * 1024;

/// The engine every class runs on: async, fuel and epoch interruption on, pooling allocator
/// sized for `max_live_objects`, compiled functions kept across compilations.
pub(crate) fn new_engine(limits: &Limits, metrics: &Arc<Metrics>) -> Result<Engine, StartError> {
    let mut config = wasmtime::Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(limits.fuel_metering)
        .epoch_interruption(true)
        .max_wasm_stack(limits.max_wasm_stack)
        // the async stack must hold the wasm stack plus host frames
        .async_stack_size(limits.max_wasm_stack + 1024 * 1024);
    let live = limits.max_live_objects.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(live)
        // every live object must fit, whatever its language: a Rust component instantiates ~3
        // core modules, a JavaScript one 4, a Python one (componentize-py: CPython, libc and
        // their shims) up to 14. A core instance slot reserves nothing until used.
        .total_core_instances(live.saturating_mul(16))
        .max_core_instances_per_component(32)
        .total_memories(live.saturating_mul(2))
        .max_memories_per_component(4)
        .total_tables(live.saturating_mul(4))
        .max_tables_per_component(8)
        .total_stacks(live)
        .max_memory_size(usize::try_from(limits.max_memory_bytes).unwrap_or(usize::MAX))
        // component and core instance metadata of a 12 MB JS component exceed the defaults
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20)
        // an evicted object's written pages are reset in place for the next activation in its
        // slot, not unmapped and faulted in again (JavaScript new objects at the live cap:
        // +25%). Only with PAGEMAP_SCAN: without it wasmtime would memset (and so make
        // resident) the first bytes of every freed memory, written or not.
        .linear_memory_keep_resident(if pagemap_scan_available() {
            usize::try_from(limits.instance_keep_resident_bytes).unwrap_or(usize::MAX)
        } else {
            0
        })
        // the same for tables: their written pages are zeroed in place rather than each table
        // unmapped with its own `madvise` (3.7% of a host's CPU creating new objects at the cap)
        .table_keep_resident(if pagemap_scan_available() {
            TABLE_KEEP_RESIDENT_BYTES
        } else {
            0
        })
        .pagemap_scan(wasmtime::Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    if limits.compiled_function_cache_bytes > 0 {
        let cache = Arc::new(FunctionCache::new(
            limits.compiled_function_cache_bytes,
            metrics.clone(),
        ));
        config
            .enable_incremental_compilation(cache)
            .map_err(|e| StartError::Engine(Arc::from(BoxError::from(e))))?;
    }
    Engine::new(&config).map_err(|e| StartError::Engine(Arc::from(BoxError::from(e))))
}

/// Whether the kernel has the `PAGEMAP_SCAN` ioctl (Linux 6.7 and later), with which wasmtime
/// resets only the pages an instance wrote.
fn pagemap_scan_available() -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let mut numbers = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let major = numbers.next().unwrap_or(0);
    let minor = numbers.next().unwrap_or(0);
    (major, minor) >= (6, 7)
}

/// The linker of every class: WASI, `wasi:http` outgoing requests and the `wasmdo:object`
/// capability hosts, each added by its own `add_to_linker`.
pub(super) fn new_linker(engine: &Engine) -> wasmtime::Result<Linker<ObjectState>> {
    let mut linker: Linker<ObjectState> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    outbound::add_to_linker(&mut linker)?;
    object::add_to_linker(&mut linker, |s| &mut s.object)?;
    websockets::add_to_linker(&mut linker, |s| &mut s.websockets)?;
    storage::add_to_linker(&mut linker, |s| StorageView(&mut s.storage))?;
    alarms::add_to_linker(&mut linker, |s| StorageView(&mut s.storage))?;
    calls::add_to_linker(&mut linker, ObjectState::objects)?;
    event_loop::add_to_linker(&mut linker, |s| &mut s.event_loop)?;
    Ok(linker)
}

//! `containerd-shim-shoal-v1`: shoal's Wasm runtime as a containerd
//! runtime (`io.containerd.shoal.v1`). See `shoal_runtime_wasm::shim`.

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() {
    shoal_runtime_wasm::shim::run().await;
}

//! `containerd-shim-shoal-v1`: shoal's Wasm runtime as a containerd
//! runtime (`io.containerd.shoal.v1`). See `shoal_runtime_wasm::shim`.

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() {
    shoal_runtime_wasm::shim::run_with(shoal_runtime_wasm::shim::Toolbox {
        wasm: shoal_node::toolbox::WASM,
        has: shoal_node::toolbox::has,
        status_dir: shoal_node::toolbox::STATUS_DIR,
    })
    .await;
}

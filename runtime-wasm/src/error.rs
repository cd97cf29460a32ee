/// Errors of the Wasm runtime. Every message is safe to show on a pod.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image is not in the local image store.
    #[error(
        "image {0:?} not found in the node's image store (import it with `shoal images import`)"
    )]
    ImageNotFound(String),
    /// Pulling from a registry failed.
    #[error("pulling image {image:?}: {reason}")]
    Pull {
        /// The image reference.
        image: String,
        /// Why.
        reason: String,
    },
    /// The image reference cannot be parsed.
    #[error("invalid image reference {0:?}")]
    InvalidImageRef(String),
    /// The image's bytes are not a WebAssembly module or component.
    #[error("image {image} is not a WebAssembly module or component")]
    NotWasm {
        /// The image reference.
        image: String,
    },
    /// The module or component is malformed or cannot be compiled.
    #[error("image {image} failed to compile: {reason}")]
    Compile {
        /// The image reference.
        image: String,
        /// Why compilation failed.
        reason: String,
    },
    /// A component of a world shoal does not run.
    #[error(
        "image {image} is a component exporting none of wasi:cli/run or wasi:http/incoming-handler (exports: {exports})"
    )]
    UnsupportedWorld {
        /// The image reference.
        image: String,
        /// The component's exports.
        exports: String,
    },
    /// Instantiation failed (missing imports, limits exhausted).
    #[error("instantiation failed: {0}")]
    Instantiate(String),
    /// Filesystem trouble in the image store.
    #[error("image store: {0}")]
    Io(#[from] std::io::Error),
    /// The engine could not be configured.
    #[error("engine: {0}")]
    Engine(String),
}

impl Clone for Error {
    /// A copy for each of several waiters on one operation (an I/O error
    /// keeps its kind and message).
    fn clone(&self) -> Self {
        match self {
            Self::ImageNotFound(i) => Self::ImageNotFound(i.clone()),
            Self::Pull { image, reason } => Self::Pull {
                image: image.clone(),
                reason: reason.clone(),
            },
            Self::InvalidImageRef(i) => Self::InvalidImageRef(i.clone()),
            Self::NotWasm { image } => Self::NotWasm {
                image: image.clone(),
            },
            Self::Compile { image, reason } => Self::Compile {
                image: image.clone(),
                reason: reason.clone(),
            },
            Self::UnsupportedWorld { image, exports } => Self::UnsupportedWorld {
                image: image.clone(),
                exports: exports.clone(),
            },
            Self::Instantiate(m) => Self::Instantiate(m.clone()),
            Self::Io(e) => Self::Io(std::io::Error::new(e.kind(), e.to_string())),
            Self::Engine(m) => Self::Engine(m.clone()),
        }
    }
}

/// Result with the runtime's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Training as the paper trains: weight maps with separation borders (eq. 2), elastic
//! deformation and other augmentation, the weighted pixel-wise softmax cross-entropy,
//! SGD with momentum 0.99 on one large tile per step, validation, checkpoints and resume.

#![forbid(unsafe_code)]

pub mod augment;
pub mod checkpoint;
pub mod config;
pub mod curves;
pub mod data;
pub mod ema;
pub mod error;
pub mod loss;
pub mod optim;
pub mod sampling;
pub mod session;
pub mod trainer;
pub mod weights;

pub use augment::AugmentConfig;
pub use config::{LabelMode, NormMode, TrainConfig};
pub use error::{Result, TrainError};
pub use session::{Observer, Quiet, Session, StepOutcome, StopControl};
pub use trainer::{
    Progress, RunFiles, RunFolder, RunOptions, StopReason, Summary, Validation, check_tile_memory, train,
    training_memory_mb,
};

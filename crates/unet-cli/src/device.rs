//! Runs a computation on the device named by `--device`: the code is generic over the
//! backend and this picks the instantiation (Flex on the CPU, CUDA with the `cuda` feature).

use unet_nn::{DeviceSpec, UnetBackend};

use crate::usage::usage;

/// A computation generic over the backend.
pub trait DeviceJob {
    type Output;
    fn run<B: UnetBackend>(self, device: B::Device) -> anyhow::Result<Self::Output>;
}

/// Runs `job` on the device `spec` names.
pub fn run_on<J: DeviceJob>(spec: &str, job: J) -> anyhow::Result<J::Output> {
    let spec: DeviceSpec = match spec.parse() {
        Ok(s) => s,
        Err(e) => return usage(e.to_string()),
    };
    match spec {
        DeviceSpec::Cpu => job.run::<unet_nn::CpuBackend>(Default::default()),
        #[cfg(feature = "cuda")]
        DeviceSpec::Cuda(index) => job.run::<unet_nn::CudaBackend>(burn::backend::cuda::CudaDevice::new(index)),
        #[cfg(not(feature = "cuda"))]
        DeviceSpec::Cuda(_) => {
            usage("this unet was built without CUDA; rebuild with `--features unet-cli/cuda` or use --device cpu")
        }
    }
}

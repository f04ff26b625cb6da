//! The Python extension module `unet._unet`: the `unet` library for numpy users. Arrays are
//! converted once into the library's planar `f32` images (the copy normalisation needs
//! anyway), the GIL is released while the network computes, and library errors become
//! `ValueError` / `OSError` with the library's messages. The Python package `unet`
//! (`python/unet/__init__.py`) wraps it with keyword options, `tqdm` progress and JSON
//! reports as dicts.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use numpy::ndarray::{Array2, Array3, Array4, ArrayViewD, Axis};
use numpy::{Element, IntoPyArray, PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyFileNotFoundError, PyKeyboardInterrupt, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use unet::{Image, Label, SampleKind};

/// The allocator of the `unet` binary, with the same setting (see `keep_freed_memory`):
/// training and prediction free and re-allocate activation-sized buffers all the time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v2's `mi_option_t`.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never hand freed memory back to the OS (as the `unet` binary does): re-faulting the
/// buffers of the next step costs ~9 % of a training step.
fn keep_freed_memory() {
    // SAFETY: `mi_option_set` stores one option value; mimalloc reads options atomically,
    // so setting it while other threads allocate is sound.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

/// The thread pool set by `set_threads` (None: rayon's global pool, one thread per core).
static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);

/// Runs `f` on the chosen thread pool.
fn on_pool<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    let pool = POOL.read().ok().and_then(|p| p.clone());
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// Sets the number of threads that prediction and training use (default: one per core).
#[pyfunction]
fn set_threads(n: usize) -> PyResult<()> {
    if n == 0 {
        return Err(PyValueError::new_err("threads = 0: must be at least 1"));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .map_err(|e| PyOSError::new_err(format!("cannot start {n} threads: {e}")))?;
    *POOL.write().map_err(|_| PyOSError::new_err("the thread pool lock is poisoned"))? = Some(Arc::new(pool));
    Ok(())
}

/// The number of threads in use.
#[pyfunction]
fn get_threads() -> usize {
    on_pool(rayon::current_num_threads)
}

/// A library error as the Python exception a user expects: files that are missing as
/// `FileNotFoundError`, other file-system errors as `OSError`, everything else as
/// `ValueError`; the message is the library's.
fn py_err(e: unet::Error) -> PyErr {
    match &e {
        unet::Error::NotFound { .. } => PyFileNotFoundError::new_err(e.to_string()),
        unet::Error::Io(_) | unet::Error::Model(unet::NnError::Read { .. } | unet::NnError::Write { .. }) => {
            PyOSError::new_err(e.to_string())
        }
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// The dtype names this module reads images from.
const IMAGE_DTYPES: &str = "uint8, uint16, float32 or float64";

/// A 2D `(H, W)` or channels-last 3D `(H, W, C)` array view as a planar image.
fn planar<T: Copy>(v: ArrayViewD<'_, T>, kind: SampleKind, f: impl Fn(T) -> f32) -> PyResult<Image> {
    let (h, w, c) = match *v.shape() {
        [h, w] => (h, w, 1),
        [h, w, c] => (h, w, c),
        _ => unreachable!("the caller passes 2D or 3D views"),
    };
    if h == 0 || w == 0 || c == 0 {
        return Err(PyValueError::new_err(format!("the image has shape {:?}; it needs at least one pixel", v.shape())));
    }
    let data: Vec<f32> = if v.ndim() == 2 {
        v.iter().map(|&x| f(x)).collect()
    } else {
        (0..c).flat_map(|k| v.index_axis(Axis(2), k).iter().map(|&x| f(x)).collect::<Vec<_>>()).collect()
    };
    Ok(Image::new(w, h, c, kind, data))
}

/// A readonly view of `a` as dtype `T`, if it is one.
fn as_dtype<'py, T: Element>(a: &Bound<'py, PyAny>) -> Option<PyReadonlyArrayDyn<'py, T>> {
    a.extract::<PyReadonlyArrayDyn<'py, T>>().ok()
}

/// The images in `a`: one 2D `(H, W)` image, one `(H, W, C)` image, or a stack of them
/// (`(N, H, W)` when `channels` is 1, `(N, H, W, C)`). Returns the images and whether
/// `a` was a stack.
fn images(a: &Bound<'_, PyAny>, channels: usize, what: &str) -> PyResult<(Vec<Image>, bool)> {
    let arr = a
        .cast::<PyUntypedArray>()
        .map_err(|_| PyTypeError::new_err(format!("{what}: expected a numpy array, got {}", type_name(a))))?;
    let shape = arr.shape().to_vec();
    let stack = match shape.len() {
        2 => false,
        3 if channels > 1 && shape[2] == channels => false,
        3 if channels == 1 && shape[2] == 1 => false,
        3 if channels == 1 => true,
        4 if shape[3] == channels => true,
        _ => {
            let want = if channels == 1 {
                "(H, W) or a stack (N, H, W)".to_string()
            } else {
                format!("(H, W, {channels}) or a stack (N, H, W, {channels})")
            };
            return Err(PyValueError::new_err(format!(
                "{what}: an array of shape {shape:?}; the model takes {channels} channel(s): give {want}"
            )));
        }
    };
    macro_rules! read {
        ($t:ty, $kind:expr, $f:expr) => {
            if let Some(r) = as_dtype::<$t>(a) {
                let v = r.as_array();
                return if stack {
                    let imgs = v.outer_iter().map(|p| planar(p, $kind, $f)).collect::<PyResult<Vec<_>>>()?;
                    Ok((imgs, true))
                } else {
                    Ok((vec![planar(v, $kind, $f)?], false))
                };
            }
        };
    }
    read!(u8, SampleKind::U8, f32::from);
    read!(u16, SampleKind::U16, f32::from);
    read!(f32, SampleKind::F32, |x| x);
    read!(f64, SampleKind::F32, |x| x as f32);
    Err(PyTypeError::new_err(format!("{what}: an array of dtype {}; give {IMAGE_DTYPES}", arr.dtype())))
}

fn type_name(a: &Bound<'_, PyAny>) -> String {
    a.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "an object".into())
}

/// Integer label arrays: `(H, W)` or a stack `(N, H, W)`, as label images. Negative ids
/// and ids beyond `u32` are refused.
fn labels(a: &Bound<'_, PyAny>, what: &str) -> PyResult<(Vec<Label>, bool)> {
    let arr = a
        .cast::<PyUntypedArray>()
        .map_err(|_| PyTypeError::new_err(format!("{what}: expected a numpy array, got {}", type_name(a))))?;
    let shape = arr.shape().to_vec();
    if !(2..=3).contains(&shape.len()) {
        return Err(PyValueError::new_err(format!(
            "{what}: an array of shape {shape:?}; give labels as (H, W) or a stack (N, H, W)"
        )));
    }
    let stack = shape.len() == 3;
    fn one<T: Copy>(v: ArrayViewD<'_, T>, f: &impl Fn(T) -> Option<u32>, what: &str) -> PyResult<Label> {
        let (h, w) = (v.shape()[0], v.shape()[1]);
        if h == 0 || w == 0 {
            return Err(PyValueError::new_err(format!("{what}: labels of shape {:?} hold no pixel", v.shape())));
        }
        let data = v.iter().map(|&x| f(x)).collect::<Option<Vec<u32>>>().ok_or_else(|| {
            PyValueError::new_err(format!(
                "{what}: holds negative ids or ids above 4294967295; label ids must be 0 (background) or 1..4294967295"
            ))
        })?;
        Ok(Label::new(w, h, data))
    }
    macro_rules! read {
        ($t:ty, $f:expr) => {
            if let Some(r) = as_dtype::<$t>(a) {
                let v = r.as_array();
                let f = $f;
                let out = if stack {
                    v.outer_iter().map(|p| one(p, &f, what)).collect::<PyResult<Vec<_>>>()?
                } else {
                    vec![one(v, &f, what)?]
                };
                return Ok((out, stack));
            }
        };
    }
    read!(bool, |x: bool| Some(u32::from(x)));
    read!(u8, |x: u8| Some(u32::from(x)));
    read!(u16, |x: u16| Some(u32::from(x)));
    read!(u32, Some);
    read!(u64, |x: u64| u32::try_from(x).ok());
    read!(i8, |x: i8| u32::try_from(x).ok());
    read!(i16, |x: i16| u32::try_from(x).ok());
    read!(i32, |x: i32| u32::try_from(x).ok());
    read!(i64, |x: i64| u32::try_from(x).ok());
    Err(PyTypeError::new_err(format!("{what}: an array of dtype {}; give integer (or bool) label ids", arr.dtype())))
}

/// A sequence argument as a list of items: a list or tuple as is, anything else (an
/// array) as one item.
fn items<'py>(a: &Bound<'py, PyAny>) -> Vec<Bound<'py, PyAny>> {
    if let Ok(l) = a.cast::<PyList>() {
        l.iter().collect()
    } else if let Ok(t) = a.cast::<PyTuple>() {
        t.iter().collect()
    } else {
        vec![a.clone()]
    }
}

/// A trained U-Net. Load one with `Model.load(path_or_name)`.
#[pyclass(module = "unet._unet", name = "Model", frozen)]
struct PyModel {
    inner: unet::Model,
}

#[pymethods]
impl PyModel {
    /// A model file written by `unet train` (`.safetensors`), or a built-in model by name
    /// (`unet.models()`).
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| unet::Model::load(&path)).map_err(py_err)?;
        Ok(PyModel { inner })
    }

    /// Input channels, classes, depth and width of the network, and its normalisation.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.inner.config();
        let d = PyDict::new(py);
        d.set_item("in_channels", c.in_channels)?;
        d.set_item("classes", c.classes)?;
        d.set_item("depth", c.depth)?;
        d.set_item("width", c.width)?;
        d.set_item("normalization", format!("{:?}", self.inner.file().normalization))?;
        Ok(d)
    }

    /// Class probabilities: `(classes, H, W)` float32 for one image, `(N, classes, H, W)`
    /// for a stack.
    #[pyo3(signature = (image, tta = false, tile = None))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        image: &Bound<'py, PyAny>,
        tta: bool,
        tile: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (imgs, stack) = images(image, self.inner.config().in_channels, "image")?;
        let model = self.configured(tta, tile, None, 1);
        let probs = py
            .detach(|| on_pool(|| imgs.iter().map(|i| model.predict(i)).collect::<unet::Result<Vec<_>>>()))
            .map_err(py_err)?;
        let (k, h, w) = (probs[0].channels, probs[0].height, probs[0].width);
        if stack {
            let n = probs.len();
            let data: Vec<f32> = probs.into_iter().flat_map(|p| p.data).collect();
            Ok(Array4::from_shape_vec((n, k, h, w), data).map_err(shape_err)?.into_pyarray(py).into_any())
        } else {
            let data = probs.into_iter().next().map(|p| p.data).unwrap_or_default();
            Ok(Array3::from_shape_vec((k, h, w), data).map_err(shape_err)?.into_pyarray(py).into_any())
        }
    }

    /// Instance labels (int32; 0 = background, cells 1, 2, ... in raster order): `(H, W)`
    /// for one image, `(N, H, W)` for a stack.
    #[pyo3(signature = (image, tta = false, tile = None, threshold = None, min_size = 1))]
    fn segment<'py>(
        &self,
        py: Python<'py>,
        image: &Bound<'py, PyAny>,
        tta: bool,
        tile: Option<usize>,
        threshold: Option<f32>,
        min_size: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (imgs, stack) = images(image, self.inner.config().in_channels, "image")?;
        let model = self.configured(tta, tile, threshold, min_size);
        let labels = py
            .detach(|| on_pool(|| imgs.iter().map(|i| model.segment(i)).collect::<unet::Result<Vec<_>>>()))
            .map_err(py_err)?;
        let (h, w) = (labels[0].height, labels[0].width);
        let mut data = Vec::with_capacity(labels.len() * h * w);
        for l in &labels {
            for &v in &l.data {
                data.push(
                    i32::try_from(v).map_err(|_| PyValueError::new_err(format!("{v} cells do not fit int32 ids")))?,
                );
            }
        }
        if stack {
            Ok(Array3::from_shape_vec((labels.len(), h, w), data).map_err(shape_err)?.into_pyarray(py).into_any())
        } else {
            Ok(Array2::from_shape_vec((h, w), data).map_err(shape_err)?.into_pyarray(py).into_any())
        }
    }

    /// Saves the model file (`.safetensors`, readable by `unet predict --model`); an
    /// existing file is replaced only with `overwrite=True`.
    #[pyo3(signature = (path, overwrite = false))]
    fn save(&self, py: Python<'_>, path: PathBuf, overwrite: bool) -> PyResult<()> {
        py.detach(|| self.inner.file().save(&path, overwrite)).map_err(|e| py_err(e.into()))
    }

    fn __repr__(&self) -> String {
        let c = self.inner.config();
        format!(
            "unet.Model(in_channels={}, classes={}, depth={}, width={})",
            c.in_channels, c.classes, c.depth, c.width
        )
    }
}

impl PyModel {
    fn configured(&self, tta: bool, tile: Option<usize>, threshold: Option<f32>, min_size: usize) -> unet::Model {
        let mut m = self.inner.clone().tta(tta).min_size(min_size);
        if let Some(t) = tile {
            m = m.tile(t);
        }
        if let Some(t) = threshold {
            m = m.threshold(t);
        }
        m
    }
}

fn shape_err(e: numpy::ndarray::ShapeError) -> PyErr {
    PyValueError::new_err(format!("internal shape error: {e}"))
}

/// The names of the built-in models.
#[pyfunction]
fn models() -> Vec<&'static str> {
    unet::builtin_models()
}

/// Trains a model on images and labels (see `unet.train` in Python for the options).
#[pyfunction]
#[pyo3(signature = (images, labels, config_json, out = None, resume = false, val_images = None, val_labels = None, progress = None))]
#[allow(clippy::too_many_arguments)]
fn train(
    py: Python<'_>,
    images: &Bound<'_, PyAny>,
    labels: &Bound<'_, PyAny>,
    config_json: &str,
    out: Option<PathBuf>,
    resume: bool,
    val_images: Option<&Bound<'_, PyAny>>,
    val_labels: Option<&Bound<'_, PyAny>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<PyModel> {
    let cfg: unet::TrainConfig =
        serde_json::from_str(config_json).map_err(|e| PyValueError::new_err(format!("training options: {e}")))?;
    let problems = cfg.problems();
    if !problems.is_empty() {
        return Err(PyValueError::new_err(format!("training options: {}", problems.join("; "))));
    }
    let samples = pairs(images, labels, "images", "labels")?;
    let val = match (val_images, val_labels) {
        (Some(i), Some(l)) => pairs(i, l, "val_images", "val_labels")?,
        (None, None) => Vec::new(),
        _ => return Err(PyValueError::new_err("give both val_images and val_labels, or neither")),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let interrupt: Arc<Mutex<Option<PyErr>>> = Arc::new(Mutex::new(None));
    let (flag, caught) = (Arc::clone(&stop), Arc::clone(&interrupt));
    let report = move |p: &unet::Progress| {
        Python::attach(|py| {
            let mut failed = py.check_signals().err();
            if failed.is_none()
                && let Some(cb) = &progress
            {
                failed = progress_dict(py, p).and_then(|d| cb.call1(py, (d,))).err();
            }
            if let Some(e) = failed {
                flag.store(true, Ordering::Relaxed);
                if let Ok(mut slot) = caught.lock() {
                    slot.get_or_insert(e);
                }
            }
        })
    };
    if resume && out.is_none() {
        return Err(PyValueError::new_err("resume=True needs out= (the run folder to continue)"));
    }
    // The trainer (whose progress callback is not `Send`) is built on the training thread.
    let run_dir = out.clone();
    let fit = move || {
        let mut trainer = unet::Trainer::new(cfg).validation(&val).stop_flag(stop).progress(report);
        if let Some(dir) = run_dir {
            trainer = if resume { trainer.resume(dir) } else { trainer.run_folder(dir) };
        }
        trainer.fit(&samples)
    };
    let model = py.detach(|| on_pool(fit)).map_err(py_err)?;
    if let Some(e) = interrupt.lock().ok().and_then(|mut s| s.take()) {
        if e.is_instance_of::<PyKeyboardInterrupt>(py) {
            let hint = match &out {
                Some(d) => format!("; the checkpoint is in {}: continue with resume=True, out={:?}", d.display(), d),
                None => "; pass out= to keep a checkpoint that training can resume from".into(),
            };
            return Err(PyKeyboardInterrupt::new_err(format!("training stopped{hint}")));
        }
        return Err(e);
    }
    Ok(PyModel { inner: model })
}

fn progress_dict<'py>(py: Python<'py>, p: &unet::Progress) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("step", p.step)?;
    d.set_item("steps", p.steps)?;
    d.set_item("loss", p.loss)?;
    d.set_item("lr", p.lr)?;
    d.set_item("improved", p.improved)?;
    if let Some(v) = &p.validation {
        let vd = PyDict::new(py);
        vd.set_item("pixel_error", v.pixel_error)?;
        vd.set_item("iou", v.iou)?;
        vd.set_item("rand_error", v.rand_error)?;
        vd.set_item("v_rand", v.v_rand)?;
        vd.set_item("v_rand_threshold", v.v_rand_threshold)?;
        d.set_item("validation", vd)?;
    }
    Ok(d)
}

/// Images and labels given as lists of arrays or as stacks, paired in order.
fn pairs(
    images_arg: &Bound<'_, PyAny>,
    labels_arg: &Bound<'_, PyAny>,
    wi: &str,
    wl: &str,
) -> PyResult<Vec<(Image, Label)>> {
    let mut imgs = Vec::new();
    for (k, a) in items(images_arg).iter().enumerate() {
        let channels = a.cast::<PyUntypedArray>().ok().map(|x| x.shape().to_vec()).map_or(1, |s| match s.len() {
            3 if s[2] <= 4 && s[0] > 4 => s[2],
            4 => s[3],
            _ => 1,
        });
        imgs.extend(images(a, channels, &format!("{wi}[{k}]"))?.0);
    }
    let labs = label_list(labels_arg, wl)?;
    if imgs.len() != labs.len() {
        return Err(PyValueError::new_err(format!(
            "{} image(s) but {} label image(s); give one label image per image",
            imgs.len(),
            labs.len()
        )));
    }
    if imgs.is_empty() {
        return Err(PyValueError::new_err(format!("{wi}: no images; give at least one image and its labels")));
    }
    Ok(imgs.into_iter().zip(labs).collect())
}

/// The label images of a list of label arrays (or of one array or stack), in order.
fn label_list(arg: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<Label>> {
    let mut out = Vec::new();
    for (k, a) in items(arg).iter().enumerate() {
        out.extend(labels(a, &format!("{name}[{k}]"))?.0);
    }
    Ok(out)
}

/// A prediction as the evaluation reads it: float arrays are probabilities of cell (in
/// [0, 1]); integer and bool arrays are masks (two values) or instance labels (more).
fn proposals(a: &Bound<'_, PyAny>) -> PyResult<Vec<(unet_metrics::Plane, Option<Vec<u32>>)>> {
    let mut out = Vec::new();
    for (k, item) in items(a).iter().enumerate() {
        let what = format!("pred[{k}]");
        let float = as_dtype::<f32>(item)
            .map(|r| r.as_array().mapv(f64::from).into_dyn())
            .or_else(|| as_dtype::<f64>(item).map(|r| r.as_array().to_owned()));
        if let Some(v) = float {
            let planes: Vec<_> = match v.ndim() {
                2 => vec![v.view()],
                3 => v.outer_iter().collect(),
                _ => {
                    return Err(PyValueError::new_err(format!(
                        "{what}: shape {:?}; give (H, W) or (N, H, W)",
                        v.shape()
                    )));
                }
            };
            for p in planes {
                if p.iter().any(|x| !(0.0..=1.0).contains(x)) {
                    return Err(PyValueError::new_err(format!(
                        "{what}: probabilities must lie in [0, 1] (NaN neither); give label ids as an integer array"
                    )));
                }
                let (h, w) = (p.shape()[0], p.shape()[1]);
                out.push((unet_metrics::Plane::new(w, h, p.iter().map(|&x| x as f32).collect()), None));
            }
            continue;
        }
        for l in labels(item, &what)?.0 {
            let plane = unet_metrics::Plane::new(
                l.width,
                l.height,
                l.data.iter().map(|&v| f32::from(u8::from(v != 0))).collect(),
            );
            let instances = distinct_above(&l.data, 2).then_some(l.data);
            out.push((plane, instances));
        }
    }
    Ok(out)
}

/// True when `values` hold more than `n` distinct values.
fn distinct_above(values: &[u32], n: usize) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    values.iter().any(|&v| {
        seen.insert(v);
        seen.len() > n
    })
}

/// Scores predictions against truth; returns `unet eval --json`'s document as JSON text.
#[pyfunction]
#[pyo3(signature = (pred, truth, metrics = None, thresholds = None))]
fn evaluate_json(
    py: Python<'_>,
    pred: &Bound<'_, PyAny>,
    truth: &Bound<'_, PyAny>,
    metrics: Option<Vec<String>>,
    thresholds: Option<Vec<f64>>,
) -> PyResult<String> {
    let names: Vec<&'static str> = match &metrics {
        Some(list) => list
            .iter()
            .map(|m| {
                unet_metrics::metric_names().find(|k| k == m).ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "unknown metric '{m}'; choose from {}",
                        unet_metrics::metric_names().collect::<Vec<_>>().join(", ")
                    ))
                })
            })
            .collect::<PyResult<_>>()?,
        None => unet_metrics::metric_names().collect(),
    };
    if let Some(t) = &thresholds {
        unet_metrics::check_thresholds(t).map_err(|e| PyValueError::new_err(format!("thresholds: {e}")))?;
    }
    let p = proposals(pred)?;
    let t = label_list(truth, "truth")?;
    if p.len() != t.len() {
        return Err(PyValueError::new_err(format!(
            "{} predicted image(s) but {} truth image(s); give one truth per prediction",
            p.len(),
            t.len()
        )));
    }
    let mut slices = Vec::new();
    let mut all_binary = true;
    for (k, ((proposal, proposal_instances), truth)) in p.into_iter().zip(t).enumerate() {
        if (proposal.width, proposal.height) != (truth.width, truth.height) {
            return Err(PyValueError::new_err(format!(
                "image {k}: the prediction is {}x{} but its truth is {}x{}; they must have the same size",
                proposal.width, proposal.height, truth.width, truth.height
            )));
        }
        if !truth.any_nonzero() {
            return Err(PyValueError::new_err(format!(
                "truth[{k}]: has no cells (all 0); every truth image needs foreground"
            )));
        }
        all_binary &= unet_metrics::is_binary(&proposal);
        let plane = unet_metrics::Plane::new(
            truth.width,
            truth.height,
            truth.data.iter().map(|&v| f32::from(u8::from(v != 0))).collect(),
        );
        let ids = distinct_above(&truth.data, 2).then_some(truth.data);
        slices.push(unet_metrics::SliceInput { truth: plane, truth_instances: ids, proposal, proposal_instances });
    }
    let thresholds = match thresholds {
        Some(t) => t,
        None if all_binary => vec![0.0],
        None => unet_metrics::isbi_thresholds(0.0, 1.0, 0.1),
    };
    let opts =
        unet_metrics::IsbiOptions { thresholds, warping: unet_metrics::needs_warping(&names), warping_radius: None };
    let n = slices.len();
    let doc = py.detach(|| on_pool(|| unet_metrics::evaluate_stack(&slices, &opts)));
    let image_names: Vec<String> = (0..n).map(|k| k.to_string()).collect();
    Ok(unet_metrics::report(&image_names, &doc, &names).to_string())
}

/// Synthetic images of touching cells with their instance labels, as `(images, labels)`:
/// uint8 (or uint16) `(n, size, size)` and int32 `(n, size, size)`; image `k` uses seed
/// `seed + k`, as `unet synth` does.
#[pyfunction]
#[pyo3(signature = (n, size = 256, seed = 0, bit_depth = 8))]
fn synth<'py>(py: Python<'py>, n: usize, size: usize, seed: u64, bit_depth: u8) -> PyResult<Bound<'py, PyTuple>> {
    if size < 32 {
        return Err(PyValueError::new_err(format!("size = {size}: must be at least 32")));
    }
    if bit_depth != 8 && bit_depth != 16 {
        return Err(PyValueError::new_err(format!("bit_depth = {bit_depth}: must be 8 or 16")));
    }
    let params = unet_synth::SynthParams { width: size, height: size, bit_depth, ..Default::default() };
    let needed = unet_synth::bytes_needed(&params).saturating_add(8 * (n as u128) * (size as u128).pow(2));
    if let Some(available) = unet_io::available_memory_bytes()
        && needed > u128::from(available)
    {
        return Err(PyValueError::new_err(format!(
            "{n} images of {size} x {size} need about {} MiB but {} MiB are available; make fewer or smaller ones",
            needed >> 20,
            available >> 20
        )));
    }
    let made: Vec<unet_synth::Synthetic> =
        py.detach(|| on_pool(|| (0..n).map(|k| unet_synth::generate(&params, seed + k as u64)).collect()));
    let lab: Vec<i32> = made.iter().flat_map(|s| s.labels.data.iter().map(|&v| v as i32)).collect();
    let labels = Array3::from_shape_vec((n, size, size), lab).map_err(shape_err)?.into_pyarray(py).into_any();
    let images = if bit_depth == 8 {
        let d: Vec<u8> = made.iter().flat_map(|s| s.image.data.iter().map(|&v| v as u8)).collect();
        Array3::from_shape_vec((n, size, size), d).map_err(shape_err)?.into_pyarray(py).into_any()
    } else {
        let d: Vec<u16> = made.iter().flat_map(|s| s.image.data.iter().map(|&v| v as u16)).collect();
        Array3::from_shape_vec((n, size, size), d).map_err(shape_err)?.into_pyarray(py).into_any()
    };
    PyTuple::new(py, [images, labels])
}

#[pymodule]
fn _unet(m: &Bound<'_, PyModule>) -> PyResult<()> {
    keep_freed_memory();
    m.add_class::<PyModel>()?;
    m.add_function(wrap_pyfunction!(models, m)?)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate_json, m)?)?;
    m.add_function(wrap_pyfunction!(synth, m)?)?;
    m.add_function(wrap_pyfunction!(set_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_threads, m)?)?;
    Ok(())
}

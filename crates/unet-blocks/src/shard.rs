//! Which blocks a process takes: [`shard_blocks`] deals the blocks out round-robin to `count`
//! processes; the index and count come from [`parse_shard`] (`"i/N"`) or from a job scheduler's
//! environment ([`shard_from_env`]: Slurm job arrays, Kubernetes Indexed Jobs).

use crate::error::{BlocksError, Result};

/// The blocks of shard `index` of `count`: `index, index + count, index + 2 * count, ...` below
/// `n_blocks`. The shards `0..count` together take every block exactly once; round-robin
/// spreads the blocks of every plane and every part of the image over the shards.
///
/// # Errors
/// [`BlocksError::Shard`] for `count == 0` or `index >= count` (indices run `0..count-1`; a
/// job array numbered from 1 is a common mistake).
pub fn shard_blocks(n_blocks: usize, index: usize, count: usize) -> Result<Vec<usize>> {
    check(index, count)?;
    Ok((index..n_blocks).step_by(count).collect())
}

fn check(index: usize, count: usize) -> Result<()> {
    if count == 0 {
        return Err(BlocksError::Shard("the shard count is 0; give at least 1 shard".into()));
    }
    if index >= count {
        return Err(BlocksError::Shard(format!(
            "shard index {index} is not below the shard count {count}: indices run 0 to {}; a job array numbered from 1 is a common mistake, number it from 0",
            count - 1
        )));
    }
    Ok(())
}

/// Parses `"i/N"`: shard `i` (from 0) of `N`, e.g. `"0/8"` to `"7/8"`.
///
/// # Errors
/// [`BlocksError::Shard`] naming the text when it is not two whole numbers `i/N` with
/// `i < N`.
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let bad = || {
        BlocksError::Shard(format!("\"{s}\" is not a shard: write index/count with the index from 0, e.g. 0/8 to 7/8"))
    };
    let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
    let index: usize = i.trim().parse().map_err(|_| bad())?;
    let count: usize = n.trim().parse().map_err(|_| bad())?;
    check(index, count)?;
    Ok((index, count))
}

/// The shard `(index, count)` a job scheduler gives this process, read through `env` (say
/// `&|k| std::env::var(k).ok()`):
/// - Slurm job arrays: `SLURM_ARRAY_TASK_ID` and `SLURM_ARRAY_TASK_COUNT`; the array must be
///   numbered `0..count-1` (checked against `SLURM_ARRAY_TASK_MIN` and `SLURM_ARRAY_TASK_MAX`
///   when they are set), i.e. submitted as `0-(N-1)`; with `UNET_SHARD_COUNT` set, that is
///   the count and the array may be any subset of `0..count-1` (to resubmit the tasks a wall
///   time killed: `sbatch --array=3,5 --export=ALL,UNET_SHARD_COUNT=8 ...`);
/// - Kubernetes Indexed Jobs: `JOB_COMPLETION_INDEX` and `UNET_SHARD_COUNT`, which the Job
///   must set to its `completions` (Kubernetes does not pass the count on);
/// - neither: `None`.
///
/// # Errors
/// [`BlocksError::Shard`] naming the variable when a value is not a whole number, the count is
/// missing, the index is not below the count, or a Slurm array is not numbered from 0.
pub fn shard_from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<(usize, usize)>> {
    let number = |key: &str| -> Result<Option<usize>> {
        match env(key) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                BlocksError::Shard(format!("{key}={v:?} is not a whole number; set it to the task's index or count"))
            }),
        }
    };
    if let Some(index) = number("SLURM_ARRAY_TASK_ID")? {
        if let Some(count) = number("UNET_SHARD_COUNT")? {
            // Part of an array of `count` tasks, resubmitted: its own numbering says nothing.
            check(index, count)?;
            return Ok(Some((index, count)));
        }
        let count = number("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
            BlocksError::Shard(format!(
                "SLURM_ARRAY_TASK_ID={index} is set but SLURM_ARRAY_TASK_COUNT is not (an old Slurm?); give the shard as index/count"
            ))
        })?;
        if let Some(min) = number("SLURM_ARRAY_TASK_MIN")?
            && min != 0
        {
            return Err(BlocksError::Shard(format!(
                "the Slurm array starts at {min} (SLURM_ARRAY_TASK_MIN); its indices must run 0 to count - 1: a job array numbered from 1 is a common mistake, submit it as 0-{}",
                count.saturating_sub(1)
            )));
        }
        if let Some(max) = number("SLURM_ARRAY_TASK_MAX")?
            && max + 1 != count
        {
            return Err(BlocksError::Shard(format!(
                "the Slurm array ends at {max} (SLURM_ARRAY_TASK_MAX) but has {count} tasks (SLURM_ARRAY_TASK_COUNT); its indices must run 0 to {} without gaps or steps",
                count.saturating_sub(1)
            )));
        }
        check(index, count)?;
        return Ok(Some((index, count)));
    }
    if let Some(index) = number("JOB_COMPLETION_INDEX")? {
        let count = number("UNET_SHARD_COUNT")?.ok_or_else(|| {
            BlocksError::Shard(format!(
                "JOB_COMPLETION_INDEX={index} is set (a Kubernetes Indexed Job) but UNET_SHARD_COUNT is not; set UNET_SHARD_COUNT to the Job's completions"
            ))
        })?;
        check(index, count)?;
        return Ok(Some((index, count)));
    }
    Ok(None)
}

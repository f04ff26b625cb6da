//! Which blocks a process takes: round-robin shards, "i/N", Slurm and Kubernetes variables.

use std::collections::HashMap;

use unet_blocks::{BlocksError, parse_shard, shard_blocks, shard_from_env};

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| map.get(k).cloned()
}

fn shard_message(r: unet_blocks::Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(e @ BlocksError::Shard(_)) => e.to_string(),
        other => panic!("expected a shard error, got {other:?}"),
    }
}

#[test]
fn shards_deal_the_blocks_round_robin_and_cover_each_once() {
    assert_eq!(shard_blocks(10, 0, 3).unwrap(), vec![0, 3, 6, 9]);
    assert_eq!(shard_blocks(10, 2, 3).unwrap(), vec![2, 5, 8]);
    assert_eq!(shard_blocks(2, 3, 5).unwrap(), Vec::<usize>::new());
    assert_eq!(shard_blocks(0, 0, 1).unwrap(), Vec::<usize>::new());
    assert_eq!(shard_blocks(4, 0, 1).unwrap(), vec![0, 1, 2, 3]);
    for (n, count) in [(56, 2), (57, 8), (3, 7)] {
        let mut all: Vec<usize> = (0..count).flat_map(|i| shard_blocks(n, i, count).unwrap()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
    }
    assert!(shard_message(shard_blocks(10, 0, 0)).contains("count is 0"));
    let m = shard_message(shard_blocks(10, 4, 4));
    assert!(m.contains("indices run 0 to 3") && m.contains("numbered from 1"), "{m}");
}

#[test]
fn shard_text_is_index_slash_count() {
    assert_eq!(parse_shard("0/8").unwrap(), (0, 8));
    assert_eq!(parse_shard(" 7 / 8 ").unwrap(), (7, 8));
    assert!(shard_message(parse_shard("8/8")).contains("indices run 0 to 7"));
    assert!(shard_message(parse_shard("1/0")).contains("count is 0"));
    for bad in ["", "3", "a/4", "1/b", "-1/4", "1/4/2", "1.5/4"] {
        let m = shard_message(parse_shard(bad));
        assert!(m.contains(&format!("\"{bad}\"")), "{bad}: {m}");
    }
}

#[test]
fn shards_come_from_slurm_or_kubernetes() {
    assert_eq!(shard_from_env(&env(&[])).unwrap(), None);
    assert_eq!(shard_from_env(&env(&[("SLURM_JOB_ID", "77")])).unwrap(), None);
    let slurm = [("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_COUNT", "8")];
    assert_eq!(shard_from_env(&env(&slurm)).unwrap(), Some((3, 8)));
    let full = [
        ("SLURM_ARRAY_TASK_ID", "7"),
        ("SLURM_ARRAY_TASK_COUNT", "8"),
        ("SLURM_ARRAY_TASK_MIN", "0"),
        ("SLURM_ARRAY_TASK_MAX", "7"),
    ];
    assert_eq!(shard_from_env(&env(&full)).unwrap(), Some((7, 8)));
    // Slurm's index wins over Kubernetes'.
    let both = [slurm[0], slurm[1], ("JOB_COMPLETION_INDEX", "1"), ("UNET_SHARD_COUNT", "8")];
    assert_eq!(shard_from_env(&env(&both)).unwrap(), Some((3, 8)));
    // One task of an 8-task array resubmitted alone (--array=7): Slurm numbers it as an array
    // of one, so it is refused unless UNET_SHARD_COUNT gives the real count.
    let alone = [
        ("SLURM_ARRAY_TASK_ID", "7"),
        ("SLURM_ARRAY_TASK_COUNT", "1"),
        ("SLURM_ARRAY_TASK_MIN", "7"),
        ("SLURM_ARRAY_TASK_MAX", "7"),
    ];
    assert!(shard_message(shard_from_env(&env(&alone))).contains("SLURM_ARRAY_TASK_MIN"));
    let resubmitted = [alone[0], alone[1], alone[2], alone[3], ("UNET_SHARD_COUNT", "8")];
    assert_eq!(shard_from_env(&env(&resubmitted)).unwrap(), Some((7, 8)));
    let too_few = [alone[0], alone[1], alone[2], alone[3], ("UNET_SHARD_COUNT", "7")];
    assert!(shard_message(shard_from_env(&env(&too_few))).contains("indices run 0 to 6"));

    // A 1-based array (--array=1-8): every task is refused, not only the last.
    for id in ["1", "8"] {
        let one_based = [
            ("SLURM_ARRAY_TASK_ID", id),
            ("SLURM_ARRAY_TASK_COUNT", "8"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "8"),
        ];
        let m = shard_message(shard_from_env(&env(&one_based)));
        assert!(m.contains("SLURM_ARRAY_TASK_MIN") && m.contains("numbered from 1") && m.contains("0-7"), "{m}");
    }
    // Without MIN/MAX, the last task of a 1-based array is caught by its index.
    let m = shard_message(shard_from_env(&env(&[("SLURM_ARRAY_TASK_ID", "8"), ("SLURM_ARRAY_TASK_COUNT", "8")])));
    assert!(m.contains("indices run 0 to 7") && m.contains("numbered from 1"), "{m}");
    // A stepped array (--array=0-14:2): 8 tasks whose ids run to 14.
    let stepped = [
        ("SLURM_ARRAY_TASK_ID", "2"),
        ("SLURM_ARRAY_TASK_COUNT", "8"),
        ("SLURM_ARRAY_TASK_MIN", "0"),
        ("SLURM_ARRAY_TASK_MAX", "14"),
    ];
    assert!(shard_message(shard_from_env(&env(&stepped))).contains("without gaps or steps"));
    let m = shard_message(shard_from_env(&env(&[("SLURM_ARRAY_TASK_ID", "3")])));
    assert!(m.contains("SLURM_ARRAY_TASK_COUNT is not"), "{m}");
    let m = shard_message(shard_from_env(&env(&[("SLURM_ARRAY_TASK_ID", "x3"), ("SLURM_ARRAY_TASK_COUNT", "8")])));
    assert!(m.contains("SLURM_ARRAY_TASK_ID=\"x3\" is not a whole number"), "{m}");
    let m = shard_message(shard_from_env(&env(&[("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_COUNT", "")])));
    assert!(m.contains("SLURM_ARRAY_TASK_COUNT"), "{m}");

    // Kubernetes Indexed Jobs: the count must be given.
    let k8s = [("JOB_COMPLETION_INDEX", "4"), ("UNET_SHARD_COUNT", "5")];
    assert_eq!(shard_from_env(&env(&k8s)).unwrap(), Some((4, 5)));
    let m = shard_message(shard_from_env(&env(&[("JOB_COMPLETION_INDEX", "4")])));
    assert!(m.contains("UNET_SHARD_COUNT is not") && m.contains("completions"), "{m}");
    let m = shard_message(shard_from_env(&env(&[("JOB_COMPLETION_INDEX", "5"), ("UNET_SHARD_COUNT", "5")])));
    assert!(m.contains("indices run 0 to 4"), "{m}");
    let m = shard_message(shard_from_env(&env(&[("JOB_COMPLETION_INDEX", "1"), ("UNET_SHARD_COUNT", "many")])));
    assert!(m.contains("UNET_SHARD_COUNT=\"many\""), "{m}");
}

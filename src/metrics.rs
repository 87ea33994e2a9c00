//! Offline evaluation metrics: AUC, per-user GAUC, log loss, RelaImpr, recall@K and NDCG@K.

use std::collections::BTreeMap;

/// Area under the ROC curve by the rank-sum formula, with ties sharing ranks.
/// `None` when the labels hold only one class.
pub fn auc(scores: &[f32], labels: &[f32]) -> Option<f64> {
    let positives = labels.iter().filter(|y| **y > 0.5).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their mean.
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        for k in &order[i..=j] {
            if labels[*k] > 0.5 {
                rank_sum += mean_rank;
            }
        }
        i = j + 1;
    }
    let p = positives as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

/// Per-user AUC averaged with each user's impression count as weight, over users that have
/// both classes. Returns `(gauc, users counted)`.
pub(crate) fn gauc(scores: &[f32], labels: &[f32], users: &[u64]) -> Option<(f64, usize)> {
    let mut groups: BTreeMap<u64, (Vec<f32>, Vec<f32>)> = BTreeMap::new();
    for ((s, y), u) in scores.iter().zip(labels).zip(users) {
        let g = groups.entry(*u).or_default();
        g.0.push(*s);
        g.1.push(*y);
    }
    let (mut total, mut weight, mut counted) = (0.0, 0.0, 0);
    for (s, y) in groups.values() {
        if let Some(a) = auc(s, y) {
            total += a * s.len() as f64;
            weight += s.len() as f64;
            counted += 1;
        }
    }
    (weight > 0.0).then(|| (total / weight, counted))
}

/// Mean binary log loss of probabilities, clipped to [1e-7, 1 - 1e-7].
pub(crate) fn logloss(probs: &[f32], labels: &[f32]) -> Option<f64> {
    if probs.is_empty() {
        return None;
    }
    let sum: f64 = probs
        .iter()
        .zip(labels)
        .map(|(p, y)| {
            let p = (*p as f64).clamp(1e-7, 1.0 - 1e-7);
            let y = *y as f64;
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        })
        .sum();
    Some(sum / probs.len() as f64)
}

/// RelaImpr = (AUC(model) - 0.5) / (AUC(base) - 0.5) - 1 (Yan et al., 2014).
pub(crate) fn rela_impr(model_auc: f64, base_auc: f64) -> Option<f64> {
    let denom = base_auc - 0.5;
    (denom.abs() > 1e-12).then(|| (model_auc - 0.5) / denom - 1.0)
}

/// Recall@K and NDCG@K of one target within a row of scores (one relevant item).
pub(crate) fn rank_metrics(row: &[f32], target: usize, k: usize) -> (f64, f64) {
    let t = row[target];
    // The target's rank: items scored strictly higher, plus earlier ties (stable order).
    let higher = row.iter().enumerate().filter(|(i, s)| **s > t || (**s == t && *i < target)).count();
    if higher < k {
        (1.0, 1.0 / ((higher + 2) as f64).log2())
    } else {
        (0.0, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_random_and_tied_rankings() {
        assert_eq!(auc(&[0.1, 0.2, 0.8, 0.9], &[0.0, 0.0, 1.0, 1.0]), Some(1.0));
        assert_eq!(auc(&[0.9, 0.8, 0.2, 0.1], &[0.0, 0.0, 1.0, 1.0]), Some(0.0));
        assert_eq!(auc(&[0.5; 4], &[0.0, 1.0, 0.0, 1.0]), Some(0.5));
        // One inversion out of four pairs.
        assert_eq!(auc(&[0.1, 0.6, 0.5, 0.9], &[0.0, 0.0, 1.0, 1.0]), Some(0.75));
        assert_eq!(auc(&[0.1, 0.2], &[1.0, 1.0]), None);
    }

    #[test]
    fn gauc_weights_users_by_impressions_and_skips_one_class_users() {
        let scores = [0.9, 0.1, 0.2, 0.8, 0.7, 0.3];
        let labels = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0];
        let users = [1, 1, 2, 2, 3, 3];
        let (g, n) = gauc(&scores, &labels, &users).unwrap();
        assert_eq!(n, 2);
        assert!((g - 0.5).abs() < 1e-12, "user 1 AUC 1, user 2 AUC 0, equal weights: {g}");
    }

    #[test]
    fn logloss_and_relaimpr() {
        let l = logloss(&[0.5, 0.5], &[1.0, 0.0]).unwrap();
        assert!((l - std::f64::consts::LN_2).abs() < 1e-9);
        assert!(logloss(&[0.0], &[1.0]).unwrap().is_finite());
        assert!((rela_impr(0.7898, 0.7591).unwrap() - 0.1176).abs() < 1e-3, "DFN over FM in the paper is about 11.8%");
        assert_eq!(rela_impr(0.7, 0.5), None);
    }

    #[test]
    fn rank_metrics_of_top_and_missed_targets() {
        let row = [0.1, 0.9, 0.5, 0.3];
        assert_eq!(rank_metrics(&row, 1, 1), (1.0, 1.0));
        let (r, n) = rank_metrics(&row, 2, 2);
        assert_eq!(r, 1.0);
        assert!((n - 1.0 / 3f64.log2()).abs() < 1e-12);
        assert_eq!(rank_metrics(&row, 0, 3), (0.0, 0.0));
    }
}

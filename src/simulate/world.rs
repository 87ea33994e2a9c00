//! The simulated world: a seeded PRNG, items, users with latent tastes, and their impressions.

use super::SimConfig;
use crate::rng::{mix64, GOLDEN_GAMMA};

/// SplitMix64 with the simulator's own derived draws (`below` by multiply-shift, `normal` from
/// `1 - u`): the same seed gives the same stream everywhere. Its mixer is `rng::mix64`.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// An independent stream for (`seed`, `stream`, `index`), e.g. one per user.
    pub fn derive(seed: u64, stream: u64, index: u64) -> Rng {
        Rng(mix64(
            mix64(seed ^ stream.wrapping_mul(GOLDEN_GAMMA)).wrapping_add(index.wrapping_mul(0xd1b5_4a32_d192_ed03)),
        ))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix64(self.0)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in 0..n (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Normal via Box-Muller.
    pub fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        mean + sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    pub(crate) fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// An index drawn with probability proportional to `weights` (non-negative, not all zero).
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.uniform() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len().saturating_sub(1)
    }

    /// An index drawn by cumulative weights (increasing, last = total).
    pub(crate) fn by_cumulative(&mut self, cum: &[f64]) -> usize {
        let x = self.uniform() * cum.last().copied().unwrap_or(0.0);
        cum.partition_point(|c| *c <= x).min(cum.len().saturating_sub(1))
    }
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// 2020-11-15 00:00 UTC: a whole day, so hours of day are `time / 3600 % 24`.
const EPOCH: u64 = 19_676 * 86_400;
const AGES: usize = 7;
const GENDERS: usize = 3;
const POP_BUCKETS: usize = 10;
const HOURS: usize = 24;
const DEVICES: usize = 4;
const CROSS_VOCAB: usize = 1000;
/// Vocabulary sizes of the profile fields after the user id: age, gender, region.
const PROFILE_SIZES: [usize; 3] = [AGES, GENDERS, REGIONS];
/// Crossed base fields for fields 8, 9, ...: user bucket x cluster, age x cluster, ...
const CROSSES: [(usize, usize); 8] = [(0, 3), (1, 3), (2, 3), (6, 3), (7, 3), (0, 4), (1, 5), (6, 4)];

struct Item {
    cluster: usize,
    creator: usize,
    quality: f64,
    pop_bucket: usize,
}

impl Item {
    /// The quality as the item tables write it: rounded to 1e-3.
    fn written_quality(&self) -> f64 {
        (self.quality * 1000.0).round() / 1000.0
    }
}

struct User {
    age: usize,
    gender: usize,
    region: usize,
}

/// Regions of the user profile (a field with no signal of its own).
pub(crate) const REGIONS: usize = 8;

/// One impression and the user's feedback to it.
#[derive(Clone, Debug)]
pub struct Event {
    pub user: u32,
    pub item: u32,
    pub time: u64,
    pub device: u8,
    pub click: bool,
    pub like: bool,
    pub dislike: bool,
    pub skip: bool,
    /// Further positive actions (DLEN's premise: one latent preference, several ways to show it).
    pub follow: bool,
    pub push: bool,
    pub comment: bool,
    /// Seconds; 0 when not clicked.
    pub dwell: f32,
}

pub(crate) struct World {
    cfg: SimConfig,
    items: Vec<Item>,
    cluster_items: Vec<Vec<u32>>,
    cluster_cum: Vec<Vec<f64>>,
    users: Vec<User>,
    field_sizes: Vec<usize>,
    offsets: Vec<usize>,
}

impl World {
    pub fn new(cfg: &SimConfig) -> World {
        let mut rng = Rng::derive(cfg.seed, 1, 0);
        let mut popularity = vec![];
        let mut items = vec![];
        for _ in 0..cfg.items {
            let cluster = rng.below(cfg.clusters);
            let owned = cfg.creators.saturating_sub(cluster).div_ceil(cfg.clusters);
            let creator = if owned == 0 { cluster % cfg.creators } else { cluster + cfg.clusters * rng.below(owned) };
            let quality = rng.normal(0.0, 0.5);
            popularity.push((rng.normal(0.0, 1.0) + 0.5 * quality).exp());
            items.push(Item { cluster, creator, quality, pop_bucket: 0 });
        }
        let mut rank: Vec<usize> = (0..cfg.items).collect();
        rank.sort_by(|a, b| popularity[*b].total_cmp(&popularity[*a]).then(a.cmp(b)));
        for (r, i) in rank.into_iter().enumerate() {
            items[i].pop_bucket = r * POP_BUCKETS / cfg.items;
        }
        let mut cluster_items = vec![vec![]; cfg.clusters];
        let mut cluster_cum = vec![vec![]; cfg.clusters];
        for (i, it) in items.iter().enumerate() {
            let cum: &mut Vec<f64> = &mut cluster_cum[it.cluster];
            cum.push(cum.last().copied().unwrap_or(0.0) + popularity[i]);
            cluster_items[it.cluster].push(i as u32);
        }
        let users = (0..cfg.users)
            .map(|u| {
                let mut r = Rng::derive(cfg.seed, 2, u as u64);
                let (age, gender) = (r.below(AGES), r.weighted(&[0.1, 0.45, 0.45]));
                User { age, gender, region: r.below(REGIONS) }
            })
            .collect();
        let mut field_sizes =
            vec![cfg.users.min(100), AGES, GENDERS, cfg.clusters, cfg.creators, POP_BUCKETS, HOURS, DEVICES];
        field_sizes.resize(cfg.fields.max(8), CROSS_VOCAB);
        field_sizes.truncate(cfg.fields);
        let offsets = field_sizes.iter().scan(0, |acc, s| Some(std::mem::replace(acc, *acc + s))).collect();
        World { cfg: cfg.clone(), items, cluster_items, cluster_cum, users, field_sizes, offsets }
    }

    /// V, U, F, FV, T, P, PV.
    pub fn hparams(&self) -> Vec<(&'static str, usize)> {
        let fv = self.field_sizes.iter().sum();
        let pv = PROFILE_SIZES.iter().sum::<usize>() + self.cfg.users;
        vec![
            ("V", self.cfg.items),
            ("U", self.cfg.users),
            ("F", self.cfg.fields),
            ("FV", fv),
            ("T", self.cfg.seq_len),
            ("P", PROFILE_SIZES.len() + 1),
            ("PV", pv),
        ]
    }

    /// The user-profile ids: user id, age, gender, region, offset into one vocabulary of size PV.
    pub fn profile(&self, user: u32) -> [usize; 4] {
        let u = &self.users[user as usize];
        let base = self.cfg.users;
        [
            user as usize,
            base + u.age,
            base + PROFILE_SIZES[0] + u.gender,
            base + PROFILE_SIZES[0] + PROFILE_SIZES[1] + u.region,
        ]
    }

    pub(crate) fn items_jsonl(&self) -> String {
        let mut s = String::new();
        for (i, it) in self.items.iter().enumerate() {
            s.push_str(&format!(
                "{{\"item\":{i},\"cluster\":{},\"creator\":{},\"quality\":{},\"popularity\":{}}}\n",
                it.cluster,
                it.creator,
                it.written_quality(),
                it.pop_bucket
            ));
        }
        s
    }

    /// The F categorical ids of an impression, offset into the shared vocabulary.
    pub fn fields(&self, e: &Event) -> Vec<usize> {
        self.field_values(e).into_iter().zip(&self.offsets).map(|(v, o)| o + v).collect()
    }

    /// The F categorical values of an impression, each in its own range `0..field_sizes[f]`:
    /// the user's bucket, age and gender, the item's cluster, creator and popularity bucket, the
    /// hour, the device, then hashed crosses of two of those.
    pub(crate) fn field_values(&self, e: &Event) -> Vec<usize> {
        let it = &self.items[e.item as usize];
        let u = &self.users[e.user as usize];
        let base = [
            self.user_bucket(e.user),
            u.age,
            u.gender,
            it.cluster,
            it.creator,
            it.pop_bucket,
            (e.time / 3600 % 24) as usize,
            e.device as usize,
        ];
        (0..self.cfg.fields)
            .map(|f| match base.get(f) {
                Some(v) => *v,
                None => {
                    let (a, b) = CROSSES[(f - 8) % CROSSES.len()];
                    let h = mix64(mix64(f as u64 ^ mix64(base[a] as u64)) ^ base[b] as u64);
                    (h % CROSS_VOCAB as u64) as usize
                }
            })
            .collect()
    }

    /// The user's bucket: the first field, shared by every `field_sizes[0]`-th user.
    fn user_bucket(&self, user: u32) -> usize {
        user as usize % self.field_sizes[0].max(1)
    }

    /// The user table of the raw log: `user_id,bucket,age,gender,region` with a header.
    pub(crate) fn users_csv(&self) -> String {
        let mut s = String::from("user_id,bucket,age,gender,region\n");
        for (i, u) in self.users.iter().enumerate() {
            s.push_str(&format!("{i},{},{},{},{}\n", self.user_bucket(i as u32), u.age, u.gender, u.region));
        }
        s
    }

    /// The item table of the raw log: `item_id,cluster,creator,popularity,quality` with a header.
    pub(crate) fn items_csv(&self) -> String {
        let mut s = String::from("item_id,cluster,creator,popularity,quality\n");
        for (i, it) in self.items.iter().enumerate() {
            let quality = it.written_quality();
            s.push_str(&format!("{i},{},{},{},{quality}\n", it.cluster, it.creator, it.pop_bucket));
        }
        s
    }

    fn pick_in(&self, rng: &mut Rng, clusters: &[usize]) -> usize {
        if clusters.is_empty() {
            return rng.below(self.cfg.items);
        }
        let c = clusters[rng.below(clusters.len())];
        if self.cluster_items[c].is_empty() {
            return rng.below(self.cfg.items);
        }
        self.cluster_items[c][rng.by_cumulative(&self.cluster_cum[c])] as usize
    }

    /// Every impression of every user, sorted by (time, user).
    pub fn events(&self) -> Vec<Event> {
        let mut out = Vec::with_capacity(self.cfg.users * self.cfg.impressions_per_user);
        for u in 0..self.cfg.users {
            self.user_events(u, &mut out);
        }
        out.sort_by_key(|e| (e.time, e.user));
        out
    }

    fn user_events(&self, u: usize, out: &mut Vec<Event>) {
        let cfg = &self.cfg;
        let k = cfg.clusters;
        let mut rng = Rng::derive(cfg.seed, 3, u as u64);
        let user = &self.users[u];
        let device = rng.below(DEVICES);
        let peak_hour = rng.uniform() * 24.0;
        let mut pref: Vec<f64> = (0..k).map(|_| rng.normal(0.0, 0.3)).collect();
        let mut order: Vec<usize> = (0..k).collect();
        for i in (1..k).rev() {
            order.swap(i, rng.below(i + 1));
        }
        if rng.bernoulli(0.5) {
            // Demographics hint at the first liked cluster.
            let hinted = (user.age * GENDERS + user.gender) % k;
            if let Some(p) = order.iter().position(|c| *c == hinted) {
                order.swap(0, p);
            }
        }
        let n_liked = (2 + rng.below(2)).min(k);
        let n_disliked = (1 + rng.below(2)).min(k - n_liked);
        let liked = order[..n_liked].to_vec();
        let disliked = order[n_liked..n_liked + n_disliked].to_vec();
        for c in &liked {
            pref[*c] = rng.normal(1.5, 0.3);
        }
        for c in &disliked {
            pref[*c] = rng.normal(-2.0, 0.3);
        }
        let creator_aff: Vec<(usize, f64)> =
            (0..3).map(|_| (rng.below(cfg.creators), if rng.bernoulli(0.5) { 1.0 } else { -1.0 })).collect();
        let bias = rng.normal(-1.0, 0.5);
        let like_propensity = rng.normal(-1.5, 0.7);
        let dislike_propensity = (0.02 + 0.1 * rng.uniform().powi(2)) * cfg.dislike_rate_scale;
        // Per-user habits for the further positive actions, from a separate stream so that the
        // impressions and the older feedback streams do not depend on them.
        let mut act = Rng::derive(cfg.seed, 4, u as u64);
        let habits = Habits::draw(&mut act);

        let mut times: Vec<u64> = (0..cfg.impressions_per_user)
            .map(|_| {
                let day = rng.below(cfg.days) as u64;
                let hour = if rng.bernoulli(0.7) {
                    rng.normal(peak_hour, 2.0).rem_euclid(24.0).floor().min(23.0) as u64
                } else {
                    rng.below(HOURS) as u64
                };
                EPOCH + day * 86_400 + hour * 3600 + rng.below(3600) as u64
            })
            .collect();
        times.sort_unstable();
        for i in 1..times.len() {
            times[i] = times[i].max(times[i - 1] + 1);
        }

        for time in times {
            if cfg.drift > 0.0 {
                pref.iter_mut().for_each(|p| *p += rng.normal(0.0, cfg.drift));
            }
            let r = rng.uniform();
            let item = if r < 0.5 {
                self.pick_in(&mut rng, &liked)
            } else if r < 0.7 {
                self.pick_in(&mut rng, &disliked)
            } else {
                rng.below(cfg.items)
            };
            let it = &self.items[item];
            let aff: f64 = creator_aff.iter().filter(|(c, _)| *c == it.creator).map(|(_, a)| a).sum();
            let a = pref[it.cluster] + aff + it.quality + rng.normal(0.0, 0.3);
            let hour = time / 3600 % 24;
            let evening = if (18..23).contains(&hour) { 0.3 } else { 0.0 };
            let mut genuine = rng.bernoulli(sigmoid(a + bias + evening));
            if genuine && a > 1.0 && rng.bernoulli(cfg.liked_unclick_rate) {
                genuine = false;
            }
            let accidental = !genuine && rng.bernoulli(cfg.accidental_click_rate);
            let dwell = if genuine {
                rng.normal(2.0 + 0.8 * a, 0.5).exp()
            } else if accidental {
                rng.normal(0.5, 0.3).exp()
            } else {
                0.0
            };
            let click = genuine || accidental;
            let like = genuine && rng.bernoulli(sigmoid(2.0 * a - 2.0 + like_propensity));
            let dislike = rng.bernoulli(dislike_propensity * sigmoid(-2.0 * a - 1.0));
            let device = if rng.bernoulli(0.85) { device } else { rng.below(DEVICES) };
            let [follow, push, comment] = habits.actions(&mut act, genuine, a, aff);
            out.push(Event {
                user: u as u32,
                item: item as u32,
                time,
                device: device as u8,
                click,
                like,
                dislike,
                skip: click && dwell < 5.0,
                follow,
                push,
                comment,
                dwell: dwell.min(f32::MAX as f64) as f32,
            });
        }
    }
}

/// A user's habits for following the creator, pushing (sharing) and commenting.
///
/// An action happens mostly when the user genuinely prefers the item (the latent "user prefers"
/// state, which also drives the genuine click), at a per-user rate: some users follow, others
/// comment. Without that preference an action is rare noise at the rate [`Habits::NOISE`].
struct Habits {
    follow: f64,
    push: f64,
    comment: f64,
}

impl Habits {
    /// The probability of an action without a genuine preference.
    const NOISE: f64 = 0.003;

    fn draw(rng: &mut Rng) -> Habits {
        Habits { follow: rng.normal(-2.0, 1.0), push: rng.normal(-2.5, 1.0), comment: rng.normal(-2.5, 1.2) }
    }

    /// follow, push, comment for one impression with affinity `a` and creator affinity `aff`.
    fn actions(&self, rng: &mut Rng, prefers: bool, a: f64, aff: f64) -> [bool; 3] {
        if !prefers {
            return [(); 3].map(|_| rng.bernoulli(Self::NOISE));
        }
        [
            rng.bernoulli(sigmoid(self.follow + 0.5 * a + 1.5 * aff)),
            rng.bernoulli(sigmoid(self.push + 0.8 * a)),
            rng.bernoulli(sigmoid(self.comment + 0.3 * a)),
        ]
    }
}

//! What each problem makes unreadable: a fold over the snapshots' trees that counts the
//! affected paths per problem (memoised by tree id), and a bounded listing of example paths.

use super::*;

/// How many paths below a tree each problem makes unreadable (empty: none). Counts, not
/// paths: a crafted tree graph may hold 2^40 paths, and the memo must stay small.
pub(super) type Damage = Arc<BTreeMap<usize, u64>>;

/// Finds what is unreadable below each tree.
pub(super) struct DamageFold<'a, 'p> {
    pub(super) repo: &'a IndexedRepository,
    pub(super) bad_blobs: &'a HashMap<(BlobKind, BlobId), usize>,
    pub(super) problems: &'p mut Problems,
    /// Trees that cannot be read, with their problem.
    pub(super) bad_trees: HashMap<BlobId, usize>,
}

impl DamageFold<'_, '_> {
    /// The problem that makes a file unreadable: its first lost data blob.
    pub(super) fn file_problem(&mut self, n: &Node) -> Option<usize> {
        n.content.iter().find_map(|item| match item {
            ContentItem::Data { id, length } => match self.bad_blobs.get(&(BlobKind::Data, *id)) {
                Some(&i) => Some(i),
                None => match self.repo.locate(BlobKind::Data, id) {
                    None => Some(self.problems.add(
                        ProblemKind::DataMissing,
                        id.to_hex(),
                        "data blob is not in the index".into(),
                    )),
                    // Readers refuse such a file: a content list that disagrees with
                    // the blob's length was crafted, or the index is.
                    Some(loc) if loc.raw_length != *length => Some(self.problems.add(
                        ProblemKind::ContentLength,
                        format!("{}:{}", id.to_hex(), length),
                        format!(
                            "a file's content list says this data blob holds {length} bytes; the index says {}",
                            loc.raw_length
                        ),
                    )),
                    Some(_) => None,
                },
            },
            ContentItem::Hole { .. } => None,
        })
    }

    /// Lists up to [`MAX_PATHS`] paths per problem of one snapshot, going only into
    /// subtrees the fold found damaged.
    pub(super) fn example_paths(&mut self, short: &str, root: BlobId, found: &Damage, memo: &HashMap<BlobId, Damage>) {
        // How many more paths each problem takes from this snapshot (its count here, up to
        // the room left in its list); the walk ends when none takes more.
        let mut wanted: HashMap<usize, u64> = found
            .iter()
            .map(|(&i, &n)| (i, n.min(MAX_PATHS.saturating_sub(self.problems.list[i].paths.len()) as u64)))
            .filter(|(_, w)| *w > 0)
            .collect();
        if wanted.is_empty() {
            return;
        }
        let mut add = |problems: &mut Problems, i: usize, path: &str| {
            if let Some(w) = wanted.get_mut(&i) {
                problems.list[i].paths.push(format!("{short}:{path}"));
                *w -= 1;
                if *w == 0 {
                    wanted.remove(&i);
                }
            }
            wanted.is_empty()
        };
        if let Some(&i) = self.bad_trees.get(&root) {
            add(self.problems, i, "/");
            return;
        }
        let repo = self.repo;
        // A walk error (a limit reached) only ends the listing early: the counts are exact.
        let _ = walk_tree(repo, root, "", &mut |v| {
            let Visit::Entry { path, item: n } = v else { return Ok(Flow::Continue) };
            let (problem, flow) = match subtree(n) {
                Some(sub) => match self.bad_trees.get(&sub) {
                    Some(&i) => (Some(i), Flow::Skip),
                    None if memo.get(&sub).is_some_and(|d| !d.is_empty()) => (None, Flow::Continue),
                    None => (None, Flow::Skip),
                },
                None => (self.file_problem(n), Flow::Continue),
            };
            match problem {
                Some(i) if add(self.problems, i, path) => Ok(Flow::Stop),
                _ => Ok(flow),
            }
        });
    }
}

impl TreeFold for DamageFold<'_, '_> {
    type Value = Damage;

    fn open(&mut self, id: &BlobId) -> Result<std::result::Result<Tree, Damage>> {
        let problem = if let Some(&i) = self.bad_blobs.get(&(BlobKind::Tree, *id)) {
            i
        } else if !self.repo.contains(BlobKind::Tree, id) {
            self.problems.add(ProblemKind::TreeMissing, id.to_hex(), "tree blob is not in the index".into())
        } else {
            match self.repo.load_tree(id) {
                Ok(t) => return Ok(Ok(t)),
                // A storage failure is not damage: the check cannot go on, and says so.
                Err(e @ RepoError::Backend(_)) => return Err(e.into()),
                Err(e) => self.problems.add(ProblemKind::TreeDamaged, id.to_hex(), e.to_string()),
            }
        };
        self.bad_trees.insert(*id, problem);
        Ok(Err(Arc::new(BTreeMap::from([(problem, 1)]))))
    }

    fn combine(&mut self, _: &BlobId, tree: Tree, subtrees: Vec<Option<Damage>>) -> Result<Damage> {
        let mut sum: BTreeMap<usize, u64> = BTreeMap::new();
        for (n, sub) in tree.nodes.iter().zip(subtrees) {
            match sub {
                Some(d) => {
                    for (&i, &count) in d.iter() {
                        let e = sum.entry(i).or_insert(0);
                        *e = e.saturating_add(count);
                    }
                }
                None => {
                    if let Some(i) = self.file_problem(n) {
                        *sum.entry(i).or_insert(0) += 1;
                    }
                }
            }
        }
        Ok(Arc::new(sum))
    }
}

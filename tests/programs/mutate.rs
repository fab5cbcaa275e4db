//! A checkpoint-file mutator, deterministic from a seed: bit flips, byte runs, zeroed, 0xFF and
//! truncated regions, and addresses set to extremes, aimed anywhere in the file and, on purpose,
//! at HDF5's own structures (superblock, B-trees, heaps, symbol nodes, global heaps of strings)
//! and at attributes (found by their names) besides the data.

/// SplitMix64: tiny, fast, and the same sequence on every machine for a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5EED_F00D_CAFE_D00D)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Signatures of HDF5 structures (version 0/1 files write the first five; later ones the rest).
const SIGNATURES: [&[u8]; 12] =
    [b"TREE", b"HEAP", b"SNOD", b"GCOL", b"OCHK", b"OHDR", b"FRHP", b"FHDB", b"FHIB", b"BTHD", b"BTLF", b"FSHD"];

/// Where in one file the mutator aims: offsets of HDF5 structures and of attribute names.
pub struct Targets {
    structures: Vec<usize>,
    attributes: Vec<usize>,
}

impl Targets {
    /// Scan `file` for structure signatures and for the given attribute and field names.
    pub fn find(file: &[u8], names: &[&str]) -> Targets {
        let find_all = |pat: &[u8]| -> Vec<usize> { file.windows(pat.len()).enumerate().filter(|(_, w)| *w == pat).map(|(i, _)| i).collect() };
        let structures = SIGNATURES.iter().flat_map(|s| find_all(s)).collect();
        let attributes = names.iter().flat_map(|n| find_all(n.as_bytes())).collect();
        Targets { structures, attributes }
    }
}

/// Damage `file` as the seed says; returns what was done, e.g. `flip@1234^0x10 zero@96+37`.
pub fn mutate(file: &mut Vec<u8>, seed: u64, t: &Targets) -> String {
    let mut r = Rng::new(seed);
    let mut done = Vec::new();
    // Mostly one mutation: the subtle cases; a few pile several up.
    let n = [1, 1, 1, 1, 1, 1, 1, 2, 2, 3][r.below(10)];
    for _ in 0..n {
        let len = file.len();
        if len == 0 {
            break;
        }
        // Where: anywhere, the superblock, the first 4 KiB (root group), a structure, an attribute.
        let (pos, area) = match r.below(8) {
            0..=2 => (r.below(len), "any"),
            3 => (r.below(len.min(96)), "superblock"),
            4 => (r.below(len.min(4096)), "head"),
            5 if !t.structures.is_empty() => (t.structures[r.below(t.structures.len())] + r.below(160), "structure"),
            _ if !t.attributes.is_empty() => (t.attributes[r.below(t.attributes.len())] + r.below(96), "attribute"),
            _ => (r.below(len), "any"),
        };
        let pos = pos.min(len - 1);
        let what = match r.below(12) {
            0..=3 => {
                let bits = 1 + r.below(4);
                let mut desc = format!("flip@{pos}");
                for _ in 0..bits {
                    let (i, b) = ((pos + r.below(8)).min(len - 1), 1u8 << r.below(8));
                    file[i] ^= b;
                    desc += &format!("^{i}.{b:#04x}");
                }
                desc
            }
            4 | 5 => {
                let k = (1 + r.below(32)).min(len - pos);
                for b in &mut file[pos..pos + k] {
                    *b = r.next() as u8;
                }
                format!("bytes@{pos}+{k}")
            }
            6 | 7 => {
                let k = (1 + r.below(512)).min(len - pos);
                file[pos..pos + k].fill(0);
                format!("zero@{pos}+{k}")
            }
            8 => {
                let k = (1 + r.below(64)).min(len - pos);
                file[pos..pos + k].fill(0xFF);
                format!("ff@{pos}+{k}")
            }
            9 => {
                // An 8-byte address or length set to something absurd.
                let v: u64 = [u64::MAX, 1 << 40, len as u64 + r.below(1 << 20) as u64, 0][r.below(4)];
                let k = 8.min(len - pos);
                file[pos..pos + k].copy_from_slice(&v.to_le_bytes()[..k]);
                format!("addr@{pos}={v:#x}")
            }
            10 => {
                // A 4-byte size or count off by a little or a lot.
                let k = 4.min(len - pos);
                let mut w = [0u8; 4];
                w[..k].copy_from_slice(&file[pos..pos + k]);
                let v = u32::from_le_bytes(w).wrapping_add([1, u32::MAX, 1 << 20, 7][r.below(4)]);
                file[pos..pos + k].copy_from_slice(&v.to_le_bytes()[..k]);
                format!("size@{pos}={v:#x}")
            }
            _ => {
                file.truncate(pos.max(1));
                format!("trunc@{}", pos.max(1))
            }
        };
        done.push(format!("{area}:{what}"));
    }
    done.join(" ")
}

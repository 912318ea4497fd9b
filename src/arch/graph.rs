//! The layer graph: one family-agnostic description of a network that every consumer walks.
//!
//! A builder (today [`super::efficientnet`]) turns an architecture description into a
//! [`Network`]: a tree of [`Op`]s in execution order, each parameterised layer carrying its timm
//! module name (so its state-dict keys) and, where the network has a TensorFlow original, the TF
//! layer it comes from, assigned when the builder creates it. The consumers — the parameter list,
//! the FLOP conventions (`flops`), the `.pth` `_metadata` tree (`filesize`), the TF→timm map
//! (`mapping::tf_efficientnet`), the wrong-architecture diagnosis (`mapping::fit`) and the tch
//! interpreter (`torch`) — each walk it with one `match` over [`Op`]. A new block type is a
//! builder change; a new kind of layer is one new arm per consumer that needs it.
use super::{Padding, ParamKind, ParamSpec};

/// An activation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Act {
    /// `x` (timm's `nn.Identity` where a block has no activation).
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x · sigmoid(x)` (swish).
    Silu,
    /// `x · relu6(x + 3) / 6`.
    HardSwish,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `relu6(x + 3) / 6`.
    HardSigmoid,
    /// `relu6(x + 3) · 0.16667`: TF-slim MobileNetV3's squeeze-excite gate, which timm's port
    /// replaced by [`Act::HardSigmoid`]. Only [`Network::as_tf_computes`] uses it, to check a
    /// conversion against the TF original's own logits.
    HardSigmoidSlim,
}

/// TF-slim's hard-sigmoid factor (`mobilenet_v3.py`: `relu6(x + 3) * 0.16667`).
pub const SLIM_HARD_SIGMOID_FACTOR: f64 = 0.16667;

/// How a network's TF original names the variables of a layer and lays out its classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TfVariables {
    /// Keras and `tf.layers` (tensorflow/tpu): `kernel`, `depthwise_kernel`, `bias`; the
    /// classifier is a dense `[in, classes]`.
    Keras,
    /// TF-slim (tensorflow/models `research/slim`): `weights`, `depthwise_weights`, `biases`;
    /// the classifier is a 1×1 conv `[1, 1, in, 1 + classes]` whose class 0 is slim's
    /// background class, which timm's classifier does not have.
    Slim,
}

/// A convolution's kernel: one square size, or MixNet's mixed kernels, one per channel split.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kernel {
    /// One `k × k` kernel.
    Square(usize),
    /// timm's `MixedConv2d`: the input and output channels are split by [`split_channels`] into
    /// one group per kernel size; each split is its own conv, named `<name>.<i>`.
    Mixed(Vec<usize>),
}

/// timm's `_split_channels(num_chan, num_groups)`: equal parts, the remainder in the first.
pub fn split_channels(channels: usize, parts: usize) -> Vec<usize> {
    (0..parts.max(1))
        .map(|i| split_channel(channels, parts, i))
        .collect()
}

/// Part `i` of [`split_channels`]`(channels, parts)`, without building the list.
pub fn split_channel(channels: usize, parts: usize, i: usize) -> usize {
    let parts = parts.max(1);
    channels / parts + if i == 0 { channels % parts } else { 0 }
}

/// A dotted timm name, `<base>[.<index>][.<leaf>]`, kept in its parts: a consumer that needs
/// only its length (the file-size predictor) does not build the string. `Display` writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Name<'a> {
    /// A module path (`blocks.1.0.conv_dw`; `""` for the root module).
    pub base: &'a str,
    /// A numbered child (one split of a [`Kernel::Mixed`] conv).
    pub index: Option<usize>,
    /// A named child module or tensor (`act1`, `weight`).
    pub leaf: Option<&'static str>,
}

impl<'a> Name<'a> {
    /// The module path itself.
    pub fn module(base: &'a str) -> Name<'a> {
        Name {
            base,
            index: None,
            leaf: None,
        }
    }

    /// `<self>.<leaf>`, for a name without a leaf (a module, or one split of a mixed conv).
    pub fn child(self, leaf: &'static str) -> Name<'a> {
        debug_assert!(self.leaf.is_none(), "{self}.{leaf}: a name has one leaf");
        Name {
            leaf: Some(leaf),
            ..self
        }
    }

    /// Bytes of the written name.
    pub fn len(&self) -> usize {
        let index = self
            .index
            .map_or(0, |i| 1 + i.checked_ilog10().map_or(1, |d| d as usize + 1));
        self.base.len() + index + self.leaf.map_or(0, |l| 1 + l.len())
    }

    /// Whether the written name is empty (the root module).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.base)?;
        if let Some(i) = self.index {
            write!(f, ".{i}")?;
        }
        if let Some(leaf) = self.leaf {
            write!(f, ".{leaf}")?;
        }
        Ok(())
    }
}

/// One state-dict tensor as the graph describes it: a [`ParamSpec`] whose name is not built
/// yet ([`Tensor::spec`] builds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tensor<'a> {
    /// timm's state-dict key, in parts.
    pub name: Name<'a>,
    /// What it is.
    pub kind: ParamKind,
    dims: [usize; 4],
    ndim: usize,
}

impl<'a> Tensor<'a> {
    /// A tensor of at most four dimensions (every tensor the graph has).
    fn new(name: Name<'a>, shape: &[usize], kind: ParamKind) -> Tensor<'a> {
        let mut dims = [0; 4];
        dims[..shape.len()].copy_from_slice(shape);
        Tensor {
            name,
            kind,
            dims,
            ndim: shape.len(),
        }
    }

    /// torch layout shape.
    pub fn shape(&self) -> &[usize] {
        &self.dims[..self.ndim]
    }

    /// Number of elements, saturating like [`ParamSpec::numel`].
    pub fn numel(&self) -> u64 {
        self.shape()
            .iter()
            .fold(1u64, |n, &d| n.saturating_mul(d as u64))
    }

    /// Number of elements; `None` when it does not fit in 64 bits.
    pub fn checked_numel(&self) -> Option<u64> {
        self.shape()
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
    }

    /// The tensor with its name written.
    pub fn spec(&self) -> ParamSpec {
        ParamSpec {
            name: self.name.to_string(),
            shape: self.shape().to_vec(),
            kind: self.kind,
        }
    }
}

/// A 2-D convolution, named by its timm module path (`blocks.1.0.conv_dw`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Conv {
    /// timm module path; parameters are `<name>.weight` (and `<name>.bias`), or
    /// `<name>.<i>.weight` per split of a [`Kernel::Mixed`] conv.
    pub name: String,
    /// Input channels.
    pub in_chs: usize,
    /// Output channels.
    pub out_chs: usize,
    /// Kernel size(s).
    pub kernel: Kernel,
    /// Stride on both axes.
    pub stride: usize,
    /// Groups (= channels for depthwise). A mixed conv is depthwise (each split grouped by its
    /// own channels) when `groups == in_chs`, dense per split otherwise.
    pub groups: usize,
    /// Has a bias.
    pub bias: bool,
    /// Padding rule.
    pub padding: Padding,
    /// The TF layers this conv comes from, relative to the model scope (`blocks_4/conv2d_1`):
    /// one per part ([`Conv::parts`]; MixNet's splits are separate TF layers), or none when
    /// the network has no TF original.
    pub source: Vec<String>,
    /// CondConv experts (timm `CondConv2d`), 0 for a plain conv: the weight is stored as
    /// `[experts, out·in/groups·k·k]` and mixed per sample by the enclosing [`Op::CondConv`]'s
    /// routing weights.
    pub experts: usize,
}

/// One conv of a (possibly mixed) [`Conv`]: what torch actually runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvPart {
    /// Index of the split (`None` for a square conv).
    pub index: Option<usize>,
    /// Input channels of this part.
    pub in_chs: usize,
    /// Output channels of this part.
    pub out_chs: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Groups of this part.
    pub groups: usize,
}

impl ConvPart {
    /// torch weight shape `[out, in/groups, k, k]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.out_chs,
            self.in_chs / self.groups.max(1),
            self.kernel,
            self.kernel,
        ]
    }
}

impl Conv {
    /// Whether this is a depthwise conv (TF `DepthwiseConv2D`): one group per channel.
    pub fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.in_chs && self.in_chs == self.out_chs
    }

    /// The convs torch runs: one for a square kernel, one per split for a mixed kernel (the
    /// channels split by [`split_channels`]).
    pub fn parts(&self) -> impl Iterator<Item = ConvPart> + '_ {
        let (sizes, mixed) = match &self.kernel {
            Kernel::Square(k) => (std::slice::from_ref(k), false),
            Kernel::Mixed(ks) => (ks.as_slice(), true),
        };
        let depthwise = self.groups == self.in_chs && self.groups > 1;
        let n = sizes.len();
        sizes.iter().enumerate().map(move |(i, &kernel)| {
            if !mixed {
                return ConvPart {
                    index: None,
                    in_chs: self.in_chs,
                    out_chs: self.out_chs,
                    kernel,
                    groups: self.groups,
                };
            }
            let in_chs = split_channel(self.in_chs, n, i);
            ConvPart {
                index: Some(i),
                in_chs,
                out_chs: split_channel(self.out_chs, n, i),
                kernel,
                groups: if depthwise { in_chs } else { 1 },
            }
        })
    }

    /// The largest kernel size (the one that fixes the output size under every padding rule
    /// zoo knows, since all parts share the stride).
    pub fn max_kernel(&self) -> usize {
        match &self.kernel {
            Kernel::Square(k) => *k,
            Kernel::Mixed(ks) => ks.iter().copied().max().unwrap_or(1),
        }
    }

    /// Output (h, w) for an input (h, w); `None` when the arithmetic overflows.
    pub fn output_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let k = self.max_kernel();
        let (oh, _, _) = self.padding.checked_resolve(h, k, self.stride)?;
        let (ow, _, _) = self.padding.checked_resolve(w, k, self.stride)?;
        Some((oh, ow))
    }

    /// The weights and optional biases, torch layout `[out, in/groups, k, k]`, in timm order
    /// (CondConv: `[experts, out·in/groups·k·k]` and `[experts, out]`).
    pub fn params(&self) -> Vec<ParamSpec> {
        let mut v = vec![];
        self.for_each_tensor(&mut |t| v.push(t.spec()));
        v
    }

    /// Calls `f` on each tensor of [`Conv::params`], in that order, without building names.
    pub fn for_each_tensor<'a>(&'a self, f: &mut impl FnMut(Tensor<'a>)) {
        let module = Name::module(&self.name);
        if self.experts > 0 {
            let per_expert = self
                .parts()
                .map(|p| p.weight_shape().iter().product::<usize>())
                .sum();
            f(Tensor::new(
                module.child("weight"),
                &[self.experts, per_expert],
                ParamKind::Weight,
            ));
            if self.bias {
                f(Tensor::new(
                    module.child("bias"),
                    &[self.experts, self.out_chs],
                    ParamKind::Bias,
                ));
            }
            return;
        }
        for part in self.parts() {
            let prefix = Name {
                index: part.index,
                ..module
            };
            f(Tensor::new(
                prefix.child("weight"),
                &part.weight_shape(),
                ParamKind::Weight,
            ));
            if self.bias {
                f(Tensor::new(
                    prefix.child("bias"),
                    &[part.out_chs],
                    ParamKind::Bias,
                ));
            }
        }
    }

    /// Multiply-accumulates at an output size (excluding bias); `None` when they do not fit
    /// in 64 bits. A CondConv adds the expert mixing (`routing [1, E] @ weight [E, P]`: `E·P`,
    /// plus `E·out` for a bias), which torch runs as a matmul.
    pub fn macs(&self, out_h: usize, out_w: usize) -> Option<u64> {
        let conv = self.parts().try_fold(0u64, |sum, part| {
            let [o, i, kh, kw] = part.weight_shape();
            let m = [out_h, out_w, o, i, kh, kw]
                .iter()
                .try_fold(1u64, |n, &d| n.checked_mul(d as u64))?;
            sum.checked_add(m)
        })?;
        if self.experts == 0 {
            return Some(conv);
        }
        let mixing = self.param_count()?;
        conv.checked_add(mixing)
    }

    /// Weight (and bias) elements; `None` when they do not fit in 64 bits.
    pub fn param_count(&self) -> Option<u64> {
        let mut sum = Some(0u64);
        self.for_each_tensor(&mut |t| {
            sum = sum.and_then(|s| s.checked_add(t.checked_numel()?));
        });
        sum
    }
}

/// A BatchNorm2d, named by its timm module path (`bn1`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BatchNorm {
    /// timm module path.
    pub name: String,
    /// Channels.
    pub channels: usize,
    /// Epsilon.
    pub eps: f64,
    /// The TF layer it comes from, relative to the model scope.
    pub source: Option<String>,
}

impl BatchNorm {
    /// weight, bias, running_mean, running_var (timm order; `num_batches_tracked` is not listed).
    pub fn params(&self) -> Vec<ParamSpec> {
        let mut v = vec![];
        self.for_each_tensor(&mut |t| v.push(t.spec()));
        v
    }

    /// Calls `f` on each tensor of [`BatchNorm::params`], in that order.
    pub fn for_each_tensor<'a>(&'a self, f: &mut impl FnMut(Tensor<'a>)) {
        for (leaf, kind) in [
            ("weight", ParamKind::Weight),
            ("bias", ParamKind::Bias),
            ("running_mean", ParamKind::RunningMean),
            ("running_var", ParamKind::RunningVar),
        ] {
            f(Tensor::new(
                Name::module(&self.name).child(leaf),
                &[self.channels],
                kind,
            ));
        }
    }
}

/// A fully connected layer with a bias.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Linear {
    /// timm module path.
    pub name: String,
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
    /// The TF layer it comes from, relative to the model scope.
    pub source: Option<String>,
}

impl Linear {
    /// weight `[out, in]` and bias `[out]`.
    pub fn params(&self) -> Vec<ParamSpec> {
        let mut v = vec![];
        self.for_each_tensor(&mut |t| v.push(t.spec()));
        v
    }

    /// Calls `f` on each tensor of [`Linear::params`], in that order.
    pub fn for_each_tensor<'a>(&'a self, f: &mut impl FnMut(Tensor<'a>)) {
        let module = Name::module(&self.name);
        f(Tensor::new(
            module.child("weight"),
            &[self.out_features, self.in_features],
            ParamKind::Weight,
        ));
        f(Tensor::new(
            module.child("bias"),
            &[self.out_features],
            ParamKind::Bias,
        ));
    }
}

/// Squeeze-excitation: global mean → `reduce` (1×1) → `act` → `expand` (1×1) → `gate` → scale
/// the input by it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SqueezeExcite {
    /// timm module path (`blocks.1.0.se`).
    pub module: String,
    /// `se.conv_reduce`: channels → width.
    pub reduce: Conv,
    /// Activation after `reduce` (module `se.act1`).
    pub act: Act,
    /// `se.conv_expand`: width → channels.
    pub expand: Conv,
    /// The gate applied to the expanded map.
    pub gate: Act,
}

/// One node of the graph.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// A convolution.
    Conv(Conv),
    /// A BatchNorm (inference).
    Norm(BatchNorm),
    /// An activation; `module` is its timm module path when timm has one.
    Act {
        /// timm module path, if the activation is a module.
        module: Option<String>,
        /// Which function.
        act: Act,
    },
    /// Squeeze-excitation.
    SqueezeExcite(SqueezeExcite),
    /// `body(x) + x`.
    Residual(Vec<Op>),
    /// A named container module (`blocks`, `blocks.3`, `blocks.3.1`) running `body` in order.
    Scope {
        /// timm module path.
        module: String,
        /// What it runs.
        body: Vec<Op>,
    },
    /// Global average pool to `[C, 1, 1]`.
    GlobalPool {
        /// timm module path.
        module: String,
    },
    /// `[C, 1, 1]` → `[C]`; `module` when timm has a module for it.
    Flatten {
        /// timm module path, if any.
        module: Option<String>,
    },
    /// A fully connected layer on a flat vector.
    Linear(Linear),
    /// CondConv routing (timm `CondConvResidual`): `sigmoid(routing(mean(x)))` per sample
    /// mixes the experts of every conv with experts in `body`, which then runs on `x`. timm
    /// registers `routing` after the body's layers, so its tensors come last.
    CondConv {
        /// `routing_fn`: input channels → experts.
        routing: Linear,
        /// The block's layers.
        body: Vec<Op>,
    },
}

/// What kind of module a [`Network::modules`] entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleKind {
    /// A container (the root, a scope).
    Container,
    /// A convolution.
    Conv,
    /// A BatchNorm.
    BatchNorm,
    /// An activation.
    Act,
    /// A squeeze-excitation container.
    SqueezeExcite,
    /// A global pool.
    Pool,
    /// A flatten.
    Flatten,
    /// A fully connected layer.
    Linear,
}

/// A parameterised layer, as [`Network::layers`] yields them in `state_dict()` order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Layer<'a> {
    /// A convolution (SE convolutions included).
    Conv(&'a Conv),
    /// A BatchNorm.
    Norm(&'a BatchNorm),
    /// A fully connected layer.
    Linear(&'a Linear),
}

impl<'a> Layer<'a> {
    /// This layer's tensors in timm order.
    pub fn params(&self) -> Vec<ParamSpec> {
        let mut v = vec![];
        self.for_each_tensor(&mut |t| v.push(t.spec()));
        v
    }

    /// Calls `f` on each tensor of [`Layer::params`], in that order, without building names.
    pub fn for_each_tensor(&self, f: &mut impl FnMut(Tensor<'a>)) {
        match *self {
            Layer::Conv(c) => c.for_each_tensor(f),
            Layer::Norm(n) => n.for_each_tensor(f),
            Layer::Linear(l) => l.for_each_tensor(f),
        }
    }

    /// The timm module.
    pub fn name(&self) -> &str {
        match self {
            Layer::Conv(c) => &c.name,
            Layer::Norm(n) => &n.name,
            Layer::Linear(l) => &l.name,
        }
    }

    /// Each of [`Layer::params`] with the TF layer it comes from; `None` when the builder
    /// named no TF layer for it (or not one per part).
    pub fn params_with_source(&self) -> Option<Vec<(ParamSpec, &str)>> {
        fn all_from(
            params: Vec<ParamSpec>,
            source: Option<&str>,
        ) -> Option<Vec<(ParamSpec, &str)>> {
            let s = source?;
            Some(params.into_iter().map(|p| (p, s)).collect())
        }
        match self {
            Layer::Norm(n) => all_from(n.params(), n.source.as_deref()),
            Layer::Linear(l) => all_from(l.params(), l.source.as_deref()),
            // A CondConv bank is one TF layer, whatever its parts.
            Layer::Conv(c) if c.experts > 0 => {
                all_from(c.params(), c.source.first().map(String::as_str))
            }
            Layer::Conv(c) => {
                let parts = c.parts().count();
                if c.source.len() != parts {
                    return None;
                }
                // `params` lists each part's weight (and bias) in part order.
                let per_part = c.params().len() / parts;
                Some(
                    c.params()
                        .into_iter()
                        .enumerate()
                        .map(|(i, p)| (p, c.source[i / per_part].as_str()))
                        .collect(),
                )
            }
        }
    }
}

/// A built network.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Network {
    /// The architecture it was built from, as zoo spells it (provenance, messages).
    pub arch: String,
    /// Input channels.
    pub in_chans: usize,
    /// The ops, in execution order.
    pub ops: Vec<Op>,
    /// How the TF original names its variables, when layers name a TF original.
    pub tf_variables: Option<TfVariables>,
}

/// Calls `f` on every op in pre-order (a scope or residual before its body).
pub fn visit<'a>(ops: &'a [Op], f: &mut impl FnMut(&'a Op)) {
    for op in ops {
        f(op);
        match op {
            Op::Residual(body) | Op::Scope { body, .. } | Op::CondConv { body, .. } => {
                visit(body, f)
            }
            _ => {}
        }
    }
}

impl Network {
    /// The network as its TF original computes it, when timm's port changed the arithmetic:
    /// TF-slim's squeeze-excite gate ([`Act::HardSigmoidSlim`]); `None` when the two compute
    /// the same. A conversion is checked against the TF original's logits with this.
    pub fn as_tf_computes(&self) -> Option<Network> {
        fn walk(ops: &mut [Op]) -> bool {
            let mut changed = false;
            for op in ops {
                match op {
                    Op::SqueezeExcite(se) if se.gate == Act::HardSigmoid => {
                        se.gate = Act::HardSigmoidSlim;
                        changed = true;
                    }
                    Op::Residual(body) | Op::Scope { body, .. } | Op::CondConv { body, .. } => {
                        changed |= walk(body)
                    }
                    _ => {}
                }
            }
            changed
        }
        if self.tf_variables != Some(TfVariables::Slim) {
            return None;
        }
        let mut net = self.clone();
        walk(&mut net.ops).then_some(net)
    }

    /// Every parameterised layer in timm `state_dict()` order.
    pub fn layers(&self) -> Vec<Layer<'_>> {
        let mut out = vec![];
        self.for_each_layer(&mut |l| out.push(l));
        out
    }

    /// Calls `f` on every parameterised layer in timm `state_dict()` order.
    pub fn for_each_layer<'a>(&'a self, f: &mut impl FnMut(Layer<'a>)) {
        fn walk<'a>(ops: &'a [Op], f: &mut impl FnMut(Layer<'a>)) {
            for op in ops {
                match op {
                    Op::Conv(c) => f(Layer::Conv(c)),
                    Op::Norm(n) => f(Layer::Norm(n)),
                    Op::Linear(l) => f(Layer::Linear(l)),
                    Op::SqueezeExcite(se) => {
                        f(Layer::Conv(&se.reduce));
                        f(Layer::Conv(&se.expand));
                    }
                    Op::Residual(body) | Op::Scope { body, .. } => walk(body, f),
                    Op::CondConv { routing, body } => {
                        walk(body, f);
                        f(Layer::Linear(routing));
                    }
                    Op::Act { .. } | Op::GlobalPool { .. } | Op::Flatten { .. } => {}
                }
            }
        }
        walk(&self.ops, f);
    }

    /// Every state-dict entry in timm `state_dict()` order (without `num_batches_tracked`).
    pub fn params(&self) -> Vec<ParamSpec> {
        let mut v = vec![];
        self.for_each_tensor(&mut |t| v.push(t.spec()));
        v
    }

    /// Calls `f` on each tensor of [`Network::params`], in that order, without building names.
    pub fn for_each_tensor<'a>(&'a self, f: &mut impl FnMut(Tensor<'a>)) {
        self.for_each_layer(&mut |l| l.for_each_tensor(f));
    }

    /// The module tree in `named_modules()` pre-order, the root (`""`) first: what a
    /// `state_dict()`'s `_metadata` lists.
    pub fn modules(&self) -> Vec<(String, ModuleKind)> {
        let mut out = vec![];
        self.for_each_module(&mut |name, kind| out.push((name.to_string(), kind)));
        out
    }

    /// Calls `f` on every module of [`Network::modules`], in that order, without building names.
    pub fn for_each_module<'a>(&'a self, f: &mut impl FnMut(Name<'a>, ModuleKind)) {
        fn walk<'a>(ops: &'a [Op], f: &mut impl FnMut(Name<'a>, ModuleKind)) {
            let module = |m: &'a String| Name::module(m);
            for op in ops {
                match op {
                    Op::Conv(c) => {
                        if c.parts().any(|p| p.index.is_some()) {
                            // timm's MixedConv2d: a ModuleDict of one conv per kernel size.
                            f(module(&c.name), ModuleKind::Container);
                            for index in c.parts().filter_map(|p| p.index) {
                                let split = Name {
                                    index: Some(index),
                                    ..module(&c.name)
                                };
                                f(split, ModuleKind::Conv);
                            }
                        } else {
                            f(module(&c.name), ModuleKind::Conv);
                        }
                    }
                    Op::Norm(n) => f(module(&n.name), ModuleKind::BatchNorm),
                    Op::Act {
                        module: Some(m), ..
                    } => f(module(m), ModuleKind::Act),
                    Op::SqueezeExcite(se) => {
                        f(module(&se.module), ModuleKind::SqueezeExcite);
                        f(module(&se.reduce.name), ModuleKind::Conv);
                        f(module(&se.module).child("act1"), ModuleKind::Act);
                        f(module(&se.expand.name), ModuleKind::Conv);
                    }
                    Op::Scope { module: m, body } => {
                        f(module(m), ModuleKind::Container);
                        walk(body, f);
                    }
                    Op::Residual(body) => walk(body, f),
                    Op::CondConv { routing, body } => {
                        walk(body, f);
                        f(module(&routing.name), ModuleKind::Linear);
                    }
                    Op::GlobalPool { module: m } => f(module(m), ModuleKind::Pool),
                    Op::Flatten { module: Some(m) } => f(module(m), ModuleKind::Flatten),
                    Op::Linear(l) => f(module(&l.name), ModuleKind::Linear),
                    Op::Act { module: None, .. } | Op::Flatten { module: None } => {}
                }
            }
        }
        f(Name::module(""), ModuleKind::Container);
        walk(&self.ops, f);
    }

    /// The conv named `name`.
    pub fn conv(&self, name: &str) -> Option<&Conv> {
        self.layers().into_iter().find_map(|l| match l {
            Layer::Conv(c) if c.name == name => Some(c),
            _ => None,
        })
    }

    /// The last fully connected layer (the classifier).
    pub fn classifier(&self) -> Option<&Linear> {
        self.layers().into_iter().rev().find_map(|l| match l {
            Layer::Linear(l) => Some(l),
            _ => None,
        })
    }

    /// Classifier outputs (0 for a network without a classifier).
    pub fn classes(&self) -> usize {
        self.classifier().map_or(0, |c| c.out_features)
    }

    /// Channels of the features the global pool reduces (timm's `num_features`: the output
    /// of `forward_features`). For EfficientNet that is the head conv's output, which the
    /// classifier reads; MobileNetV3 pools first, so its `conv_head` widens the pooled
    /// features afterwards and the classifier reads more than `num_features`.
    pub fn num_features(&self) -> usize {
        let mut last = None;
        let mut pooled = None;
        visit(&self.ops, &mut |op| match op {
            Op::Conv(c) if pooled.is_none() => last = Some(c.out_chs),
            Op::GlobalPool { .. } if pooled.is_none() => pooled = last,
            _ => {}
        });
        pooled.unwrap_or_else(|| self.classifier().map_or(0, |c| c.in_features))
    }

    /// Blocks: scopes named `blocks.<stage>.<index>`.
    pub fn block_count(&self) -> usize {
        let mut n = 0;
        visit(&self.ops, &mut |op| {
            if let Op::Scope { module, .. } = op {
                if module.starts_with("blocks.") && module.matches('.').count() == 2 {
                    n += 1;
                }
            }
        });
        n
    }

    /// Exact trainable parameter count (buffers excluded).
    pub fn trainable_params(&self) -> u64 {
        self.elements(ParamKind::is_trainable)
    }

    /// Elements in buffers (BN running statistics).
    pub fn buffer_elements(&self) -> u64 {
        self.elements(|k| !k.is_trainable())
    }

    /// Elements of the tensors whose kind `counts` (saturating, exact for every built network).
    fn elements(&self, counts: impl Fn(ParamKind) -> bool) -> u64 {
        let mut n = 0u64;
        self.for_each_tensor(&mut |t| {
            if counts(t.kind) {
                n = n.saturating_add(t.numel());
            }
        });
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file-size predictor uses `Name::len` for the key lengths it pickles: it must be the
    /// length of the name `Display` writes, for every name of every architecture zoo builds.
    #[test]
    fn name_len_is_the_written_length() {
        let root = Name::module("");
        assert_eq!((root.to_string().as_str(), root.len()), ("", 0));
        assert!(root.is_empty());
        for index in [None, Some(0), Some(9), Some(10), Some(123)] {
            for leaf in [None, Some("weight"), Some("num_batches_tracked")] {
                let name = Name {
                    base: "blocks.1.0.conv_dw",
                    index,
                    leaf,
                };
                assert_eq!(name.len(), name.to_string().len(), "{name}");
            }
        }
        for (arch, ..) in crate::arch::family::MEMBERS {
            let net = crate::arch::ArchConfig::variant(arch)
                .unwrap()
                .resolve()
                .unwrap();
            let mut tensors = vec![];
            net.for_each_tensor(&mut |t| tensors.push((t.name.to_string(), t.name.len())));
            let mut modules = vec![];
            net.for_each_module(&mut |m, _| modules.push((m.to_string(), m.len())));
            for (name, len) in tensors.iter().chain(&modules) {
                assert_eq!(name.len(), *len, "{arch} {name}");
            }
            let params: Vec<String> = net.params().into_iter().map(|p| p.name).collect();
            let names: Vec<&String> = tensors.iter().map(|(n, _)| n).collect();
            assert_eq!(params.iter().collect::<Vec<_>>(), names, "{arch}");
        }
    }

    #[test]
    fn split_channels_puts_the_remainder_first() {
        assert_eq!(split_channels(10, 3), vec![4, 3, 3]);
        assert_eq!(split_channels(96, 2), vec![48, 48]);
        assert_eq!(split_channels(8, 1), vec![8]);
        for (channels, parts) in [(10, 3), (96, 2), (8, 1), (7, 4), (1, 3)] {
            let each: Vec<usize> = (0..parts)
                .map(|i| split_channel(channels, parts, i))
                .collect();
            assert_eq!(each, split_channels(channels, parts), "{channels}/{parts}");
            assert_eq!(each.iter().sum::<usize>(), channels);
        }
    }

    #[test]
    fn mixed_depthwise_conv_has_one_weight_per_split() {
        let c = Conv {
            name: "blocks.1.0.conv_dw".into(),
            in_chs: 10,
            out_chs: 10,
            kernel: Kernel::Mixed(vec![3, 5, 7]),
            stride: 2,
            groups: 10,
            bias: false,
            padding: Padding::TfSame,
            source: vec![],
            experts: 0,
        };
        let shapes: Vec<(String, Vec<usize>)> =
            c.params().into_iter().map(|p| (p.name, p.shape)).collect();
        assert_eq!(
            shapes,
            [
                ("blocks.1.0.conv_dw.0.weight".to_string(), vec![4, 1, 3, 3]),
                ("blocks.1.0.conv_dw.1.weight".to_string(), vec![3, 1, 5, 5]),
                ("blocks.1.0.conv_dw.2.weight".to_string(), vec![3, 1, 7, 7]),
            ]
        );
        // 7x7 at stride 2 on 9x9 (TF same) → 5x5; MACs summed over the splits.
        assert_eq!(c.output_hw(9, 9), Some((5, 5)));
        assert_eq!(c.macs(5, 5), Some(25 * (4 * 9 + 3 * 25 + 3 * 49)));
        assert!(!c.is_depthwise() || c.groups == c.in_chs);
    }
}

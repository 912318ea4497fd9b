//! timm's `EfficientNetBuilder` (`timm/models/_efficientnet_builder.py`) and the model classes
//! around it (`EfficientNet`, `MobileNetV3`), written anew over the layer graph: block strings
//! ([`BlockString`]) and a family's [`Options`] in, a [`Network`] out, with every layer named as
//! timm names it and, for families with a TF original zoo knows, as TF named it.
//!
//! The rules, all timm's:
//! - channels → `round_channels(c, width)`; the stem too unless `fix_stem`, the head
//!   (`num_features`) too unless the family fixes it;
//! - repeats → `_scale_stage_depth` per stage (`ceil`, or `round` for MixNet-M), the first and
//!   last stage unscaled under `fix_first_last` (Lite);
//! - only the first block of a stage has the stage's stride;
//! - `ir` mid channels → `make_divisible(in · e)`; `er` from `fc` (scaled) when given;
//! - SE width → `round(mid · se / e)` (ratio of the block input, EfficientNet) or
//!   `make_divisible(mid · se)` (ratio of mid, MobileNetV3), see [`super::family::SeRule`];
//! - residual when stride 1 and in = out, unless `noskip` (always for `dsa`); `cn` only with
//!   `skip`.
//!
//! Module names follow the timm 0.4 module tree (`act1`/`act2` modules inside blocks, which the
//! `_metadata` of the 2020–2021 release files lists).
use super::efficientnet::{
    in_range, make_divisible, round_channels, round_half_even, scale_stage_depth_with, ArchConfig,
    ArchError, BlockKind, BlockString, Bounds,
};
use super::family::{Head, Options, TfNaming};
use super::graph::{Act, BatchNorm, Conv, Kernel, Linear, Network, Op, SqueezeExcite};

/// The stem's output channels: `stem` width-scaled unless the family fixes it.
pub fn stem_channels(cfg: &ArchConfig) -> usize {
    if cfg.family.options(cfg.width).fix_stem {
        cfg.stem
    } else {
        round_channels(cfg.stem, cfg.width)
    }
}

/// `conv_head`'s output channels (`num_features`): `head` width-scaled unless the family fixes it.
pub fn head_channels(cfg: &ArchConfig) -> usize {
    if cfg.family.options(cfg.width).fix_head {
        cfg.head
    } else {
        round_channels(cfg.head, cfg.width)
    }
}

/// The block strings of one stage (several are separated by spaces or `+`).
fn stage_strings(stage: &str) -> Result<Vec<BlockString>, ArchError> {
    stage
        .split(|c: char| c == '+' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(str::parse)
        .collect()
}

/// The repeats of each block string of stage `stage_idx` after depth scaling.
fn stage_repeats(
    cfg: &ArchConfig,
    opts: &Options,
    stage_idx: usize,
    strings: &[BlockString],
) -> Vec<usize> {
    let last_stage = cfg.blocks.len().saturating_sub(1);
    let depth = if opts.fix_first_last && (stage_idx == 0 || stage_idx == last_stage) {
        1.0
    } else {
        cfg.depth
    };
    scale_stage_depth_with(
        &strings.iter().map(|b| b.repeats).collect::<Vec<_>>(),
        depth,
        opts.depth_round,
    )
}

/// The blocks `cfg` builds over all stages, without building them (saturating).
pub fn block_count(cfg: &ArchConfig) -> Result<usize, ArchError> {
    let opts = cfg.family.options(cfg.width);
    cfg.blocks
        .iter()
        .enumerate()
        .try_fold(0usize, |total, (i, s)| {
            let repeats = stage_repeats(cfg, &opts, i, &stage_strings(s)?);
            Ok(repeats.iter().fold(total, |a, &r| a.saturating_add(r)))
        })
}

/// Builds `cfg` into its network.
pub fn build(cfg: &ArchConfig) -> Result<Network, ArchError> {
    cfg.check_bounds()?;
    let opts = cfg.family.options(cfg.width);
    let b = Builder {
        cfg,
        opts,
        arch: cfg.to_string(),
    };
    let mut ops = vec![];
    let stem_chs = b.channels("stem channels", stem_channels(cfg))?;
    ops.push(
        b.conv(
            "conv_stem".into(),
            b.tf(|n| match n {
                TfNaming::SlimMobileNetV3 => "Conv".into(),
                _ => "stem/conv2d".into(),
            })
            .into_iter()
            .collect(),
            (cfg.in_chans, stem_chs),
            Kernel::Square(3),
            2,
            1,
            false,
        ),
    );
    ops.push(b.norm(
        "bn1".into(),
        b.tf(|n| match n {
            TfNaming::SlimMobileNetV3 => "Conv/BatchNorm".into(),
            _ => format!("stem/{}", n.batch_norm()),
        }),
        stem_chs,
    ));
    ops.push(act("act1".into(), opts.act));

    let mut stages = vec![];
    let mut in_chs = stem_chs;
    let mut flat = 0;
    // TF-slim numbers its ops per kind: `Conv` (the stem is `Conv`), `expanded_conv`.
    let (mut slim_convs, mut slim_expanded) = (1, 0);
    let mut total_blocks = 0usize;
    for (stage_idx, s) in cfg.blocks.iter().enumerate() {
        let strings = stage_strings(s)?;
        in_range(
            strings.len() <= Bounds::MAX_STAGES,
            &b.arch,
            "block strings in a stage",
            strings.len(),
            format_args!("at most {}", Bounds::MAX_STAGES),
        )?;
        let repeats = stage_repeats(cfg, &opts, stage_idx, &strings);
        total_blocks = repeats
            .iter()
            .fold(total_blocks, |a, &r| a.saturating_add(r));
        in_range(
            total_blocks <= Bounds::MAX_BLOCKS,
            &b.arch,
            "blocks after depth scaling",
            total_blocks,
            format_args!("at most {}", Bounds::MAX_BLOCKS),
        )?;
        let mut blocks = vec![];
        for (bs, reps) in strings.iter().zip(repeats) {
            let out_chs = b.channels("block channels", round_channels(bs.out_chs, cfg.width))?;
            for _ in 0..reps {
                let index = blocks.len();
                let p = format!("blocks.{stage_idx}.{index}");
                // timm: only the first block of a stage strides.
                let stride = if index == 0 { bs.stride } else { 1 };
                // Where the TF original has this block: tensorflow/tpu numbers every block
                // (`blocks_<flat>`); a TF block with `expand_ratio` 1 has no expansion conv,
                // where timm's `ir` has one, so such blocks have no TF names.
                let mappable = bs.kind != BlockKind::InvertedResidual || bs.expand != 1.0;
                let tf_scope = match (opts.tf, bs.kind) {
                    (None, _) => None,
                    (Some(TfNaming::SlimMobileNetV3), BlockKind::ConvBnAct) => {
                        slim_convs += 1;
                        Some(slim_scope("Conv", slim_convs - 1))
                    }
                    (
                        Some(TfNaming::SlimMobileNetV3),
                        BlockKind::DepthwiseSeparable | BlockKind::InvertedResidual,
                    ) => {
                        slim_expanded += 1;
                        mappable.then(|| slim_scope("expanded_conv", slim_expanded - 1))
                    }
                    (Some(TfNaming::SlimMobileNetV3), _) => None,
                    (
                        Some(_),
                        BlockKind::DepthwiseSeparable
                        | BlockKind::EdgeResidual
                        | BlockKind::InvertedResidual,
                    ) => mappable.then(|| format!("blocks_{flat}")),
                    (Some(_), _) => None,
                };
                blocks.push(b.block(&p, tf_scope, bs, in_chs, out_chs, stride)?);
                flat += 1;
                in_chs = out_chs;
            }
        }
        stages.push(Op::Scope {
            module: format!("blocks.{stage_idx}"),
            body: blocks,
        });
    }
    ops.push(Op::Scope {
        module: "blocks".into(),
        body: stages,
    });

    let num_features = b.channels("head channels", head_channels(cfg))?;
    let pool = Op::GlobalPool {
        module: "global_pool".into(),
    };
    match opts.head {
        Head::ConvNormPool => {
            ops.push(b.conv(
                "conv_head".into(),
                b.tf(|_| "head/conv2d".into()).into_iter().collect(),
                (in_chs, num_features),
                Kernel::Square(1),
                1,
                1,
                false,
            ));
            ops.push(b.norm(
                "bn2".into(),
                b.tf(|n| format!("head/{}", n.batch_norm())),
                num_features,
            ));
            ops.push(act("act2".into(), opts.act));
            ops.push(pool);
            ops.push(Op::Flatten { module: None });
        }
        Head::PoolConv => {
            ops.push(pool);
            ops.push(
                b.conv(
                    "conv_head".into(),
                    b.tf(|_| slim_scope("Conv", slim_convs))
                        .into_iter()
                        .collect(),
                    (in_chs, num_features),
                    Kernel::Square(1),
                    1,
                    1,
                    true,
                ),
            );
            ops.push(act("act2".into(), opts.act));
            ops.push(Op::Flatten {
                module: Some("flatten".into()),
            });
        }
    }
    ops.push(Op::Linear(Linear {
        name: "classifier".into(),
        in_features: num_features,
        out_features: cfg.classes,
        source: b.tf(|n| match n {
            TfNaming::SlimMobileNetV3 => "Logits/Conv2d_1c_1x1".into(),
            _ => "head/dense".into(),
        }),
    }));
    let net = Network {
        arch: b.arch.clone(),
        in_chans: cfg.in_chans,
        ops,
        tf_variables: opts.tf.map(TfNaming::variables),
    };
    // Every element count, summed exactly: the bounds keep this far below 2^64, and this
    // makes it a checked fact for every built network (so the saturating sums in
    // `trainable_params`, `buffer_elements` and `filesize` are exact).
    let mut total = Some(0u64);
    net.for_each_tensor(&mut |t| {
        total = total.and_then(|a| a.checked_add(t.checked_numel()?));
    });
    in_range(
        total.is_some_and(|t| t <= u64::MAX >> 8),
        &b.arch,
        "parameter elements",
        total.map_or_else(|| "more than 2^64".to_string(), |t| t.to_string()),
        "at most 2^56",
    )?;
    Ok(net)
}

fn act(module: String, act: Act) -> Op {
    Op::Act {
        module: Some(module),
        act,
    }
}

/// conv → BN (→ activation) inside a block: one unit of timm's block classes.
struct Unit<'a> {
    /// Its conv in TF terms.
    role: UnitRole,
    conv: &'a str,
    bn: &'a str,
    act: Option<(&'a str, Act)>,
    chs: (usize, usize),
    kernel: &'a Kernel,
    stride: usize,
    groups: usize,
}

impl<'a> Unit<'a> {
    /// A dense stride-1 unit without activation.
    fn new(
        role: UnitRole,
        conv: &'a str,
        bn: &'a str,
        chs: (usize, usize),
        kernel: &'a Kernel,
    ) -> Self {
        Unit {
            role,
            conv,
            bn,
            act: None,
            chs,
            kernel,
            stride: 1,
            groups: 1,
        }
    }
    fn act(self, module: &'a str, act: Act) -> Self {
        Unit {
            act: Some((module, act)),
            ..self
        }
    }
    fn strided(self, stride: usize) -> Self {
        Unit { stride, ..self }
    }
    /// Depthwise (one group per channel) with `stride`.
    fn depthwise(self, stride: usize) -> Self {
        Unit {
            stride,
            groups: self.chs.0,
            ..self
        }
    }
}

struct Builder<'c> {
    cfg: &'c ArchConfig,
    opts: Options,
    arch: String,
}

/// Which conv of a block a unit is, as TF-slim names it.
#[derive(Clone, Copy)]
enum UnitRole {
    /// The 1×1 (or `er` k×k) expansion.
    Expand,
    /// The depthwise conv.
    Depthwise,
    /// The projection back to the block's output channels.
    Project,
    /// A `cn` block's one conv.
    Conv,
}

/// The TF layer names of one block, in the order the block creates its layers.
enum BlockNames {
    /// A tensorflow/tpu block (`MBConvBlock`, `MBConvBlockWithoutDepthwise` for `er`,
    /// `CondConvBlock`, `MixnetBlock`) in scope `blocks_<flat>`: the layers of each type are
    /// named in construction order, `conv2d`, `conv2d_1`, … This is the canonical form of
    /// `mapping::keras_names`: MixNet's and CondConv's Keras layers carry graph-wide counters
    /// in a checkpoint, which the map reduces to these ranks.
    Tpu {
        scope: String,
        naming: TfNaming,
        /// CondConv blocks name their convs `cond_conv2d` / `depthwise_cond_conv2d`.
        cond: bool,
        conv: usize,
        depthwise: usize,
        bn: usize,
    },
    /// A TF-slim MobileNetV3 op (`expanded_conv_<n>`, or `Conv_<n>` for a `cn` block): layers
    /// named by role.
    Slim { scope: String },
}

/// `<scope>/<base>` for the first layer of a type, `<scope>/<base>_<n>` after.
fn numbered(scope: &str, base: &str, n: usize) -> String {
    match n {
        0 => format!("{scope}/{base}"),
        n => format!("{scope}/{base}_{n}"),
    }
}

/// A TF-slim op scope: `Conv`, `Conv_1`, ….
fn slim_scope(base: &str, n: usize) -> String {
    match n {
        0 => base.to_owned(),
        n => format!("{base}_{n}"),
    }
}

impl BlockNames {
    fn tpu(scope: String, naming: TfNaming, cond: bool) -> Self {
        BlockNames::Tpu {
            scope,
            naming,
            cond,
            conv: 0,
            depthwise: 0,
            bn: 0,
        }
    }

    /// The next unit's conv, one name per part (MixNet's splits are separate layers), and
    /// its BatchNorm.
    fn unit(&mut self, role: UnitRole, parts: usize) -> (Vec<String>, String) {
        match self {
            BlockNames::Tpu {
                scope,
                naming,
                cond,
                conv,
                depthwise,
                bn,
            } => {
                let (base, counter) = match (role, *cond) {
                    (UnitRole::Depthwise, false) => ("depthwise_conv2d", depthwise),
                    (UnitRole::Depthwise, true) => ("depthwise_cond_conv2d", depthwise),
                    (_, false) => ("conv2d", conv),
                    (_, true) => ("cond_conv2d", conv),
                };
                let first = *counter;
                *counter += parts;
                let convs = (first..*counter)
                    .map(|i| numbered(scope, base, i))
                    .collect();
                let norm = numbered(scope, naming.batch_norm(), *bn);
                *bn += 1;
                (convs, norm)
            }
            BlockNames::Slim { scope } => {
                let conv = match role {
                    UnitRole::Expand => format!("{scope}/expand"),
                    UnitRole::Depthwise => format!("{scope}/depthwise"),
                    UnitRole::Project => format!("{scope}/project"),
                    UnitRole::Conv => scope.clone(),
                };
                let norm = format!("{conv}/BatchNorm");
                (vec![conv; parts], norm)
            }
        }
    }

    /// The squeeze-excite's reduce (`i = 0`) and expand (`i = 1`) conv.
    fn se(&self, i: usize) -> String {
        match self {
            BlockNames::Tpu { scope, .. } => numbered(&format!("{scope}/se"), "conv2d", i),
            BlockNames::Slim { scope } => slim_scope(&format!("{scope}/squeeze_excite/Conv"), i),
        }
    }

    /// CondConv's routing function.
    fn routing(&self) -> Option<String> {
        match self {
            BlockNames::Tpu { scope, .. } => Some(format!("{scope}/dense")),
            BlockNames::Slim { .. } => None,
        }
    }
}

impl Builder<'_> {
    fn channels(&self, key: &'static str, n: usize) -> Result<usize, ArchError> {
        in_range(
            n <= Bounds::MAX_CHANNELS,
            &self.arch,
            key,
            n,
            format_args!("at most {} channels", Bounds::MAX_CHANNELS),
        )
        .map(|()| n)
    }

    /// A TF name, when the family has TF names.
    fn tf(&self, name: impl FnOnce(TfNaming) -> String) -> Option<String> {
        self.opts.tf.map(name)
    }

    #[allow(clippy::too_many_arguments)]
    fn conv_layer(
        &self,
        name: String,
        source: Vec<String>,
        (in_chs, out_chs): (usize, usize),
        kernel: Kernel,
        stride: usize,
        groups: usize,
        bias: bool,
    ) -> Conv {
        Conv {
            name,
            in_chs,
            out_chs,
            kernel,
            stride,
            groups,
            bias,
            padding: self.cfg.padding,
            source,
            experts: 0,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &self,
        name: String,
        source: Vec<String>,
        chs: (usize, usize),
        kernel: Kernel,
        stride: usize,
        groups: usize,
        bias: bool,
    ) -> Op {
        Op::Conv(self.conv_layer(name, source, chs, kernel, stride, groups, bias))
    }

    fn norm(&self, name: String, source: Option<String>, channels: usize) -> Op {
        Op::Norm(BatchNorm {
            name,
            channels,
            eps: self.cfg.bn_eps,
            source,
        })
    }

    /// Appends a conv → BN (→ act) unit of the block `p`, naming its TF layers in order.
    fn unit(&self, p: &str, body: &mut Vec<Op>, tf: &mut Option<BlockNames>, u: Unit<'_>) {
        let parts = match u.kernel {
            Kernel::Square(_) => 1,
            Kernel::Mixed(ks) => ks.len(),
        };
        let (conv_tf, bn_tf) = match tf {
            Some(t) => {
                let (convs, norm) = t.unit(u.role, parts);
                (convs, Some(norm))
            }
            None => (vec![], None),
        };
        body.push(self.conv(
            format!("{p}.{}", u.conv),
            conv_tf,
            u.chs,
            u.kernel.clone(),
            u.stride,
            u.groups,
            false,
        ));
        body.push(self.norm(format!("{p}.{}", u.bn), bn_tf, u.chs.1));
        if let Some((module, a)) = u.act {
            body.push(act(format!("{p}.{module}"), a));
        }
    }

    /// The SE of a block whose SE input has `chs` channels, or `None`.
    fn squeeze_excite(
        &self,
        p: &str,
        bs: &BlockString,
        chs: usize,
        block_act: Act,
        tf: Option<&BlockNames>,
    ) -> Result<Option<Op>, ArchError> {
        if bs.se_ratio <= 0.0 {
            return Ok(None);
        }
        let rule = self.opts.se;
        let expand = match bs.kind {
            BlockKind::InvertedResidual | BlockKind::EdgeResidual => bs.expand,
            _ => 1.0,
        };
        let ratio = if rule.from_exp {
            bs.se_ratio
        } else {
            bs.se_ratio / expand
        };
        let rd = if rule.divisible {
            make_divisible(chs as f64 * ratio, 8, 0.9)
        } else {
            round_half_even(chs as f64 * ratio)
        };
        let rd = self.channels("SE channels", rd.max(1))?;
        let (reduce_tf, expand_tf) = match tf {
            Some(t) => (vec![t.se(0)], vec![t.se(1)]),
            None => (vec![], vec![]),
        };
        Ok(Some(Op::SqueezeExcite(SqueezeExcite {
            module: format!("{p}.se"),
            reduce: self.conv_layer(
                format!("{p}.se.conv_reduce"),
                reduce_tf,
                (chs, rd),
                Kernel::Square(1),
                1,
                1,
                true,
            ),
            act: rule.act.unwrap_or(block_act),
            expand: self.conv_layer(
                format!("{p}.se.conv_expand"),
                expand_tf,
                (rd, chs),
                Kernel::Square(1),
                1,
                1,
                true,
            ),
            gate: rule.gate,
        })))
    }

    /// One block, a scope named `p`, its TF original in scope `tf_scope`.
    fn block(
        &self,
        p: &str,
        tf_scope: Option<String>,
        bs: &BlockString,
        in_chs: usize,
        out_chs: usize,
        stride: usize,
    ) -> Result<Op, ArchError> {
        let block_act = bs.act.unwrap_or(self.opts.act);
        let experts = bs.experts.saturating_mul(self.cfg.experts);
        in_range(
            experts <= Bounds::MAX_EXPERTS,
            &self.arch,
            "CondConv experts",
            experts,
            format_args!("at most {}", Bounds::MAX_EXPERTS),
        )?;
        let mut tf = match (self.opts.tf, tf_scope) {
            (Some(TfNaming::SlimMobileNetV3), Some(scope)) => Some(BlockNames::Slim { scope }),
            (Some(naming), Some(scope)) => Some(BlockNames::tpu(scope, naming, experts > 0)),
            _ => None,
        };
        let mut body = vec![];
        let skip_ok = stride == 1 && in_chs == out_chs;
        let has_skip = match bs.kind {
            BlockKind::DepthwiseSeparable | BlockKind::DepthwiseSeparableAct => {
                let pw_act = bs.kind == BlockKind::DepthwiseSeparableAct;
                self.unit(
                    p,
                    &mut body,
                    &mut tf,
                    Unit::new(
                        UnitRole::Depthwise,
                        "conv_dw",
                        "bn1",
                        (in_chs, in_chs),
                        &bs.kernel,
                    )
                    .depthwise(stride)
                    .act("act1", block_act),
                );
                body.extend(self.squeeze_excite(p, bs, in_chs, block_act, tf.as_ref())?);
                // timm ≤ 0.4 DepthwiseSeparableConv: `act2` is an identity without `pw_act`.
                let pw = if pw_act { block_act } else { Act::Identity };
                self.unit(
                    p,
                    &mut body,
                    &mut tf,
                    Unit::new(
                        UnitRole::Project,
                        "conv_pw",
                        "bn2",
                        (in_chs, out_chs),
                        &bs.pw_kernel,
                    )
                    .act("act2", pw),
                );
                // `dsa` never has a residual.
                skip_ok && !pw_act && bs.skip != Some(false)
            }
            BlockKind::InvertedResidual => {
                let mid = self.channels(
                    "expanded channels",
                    make_divisible(in_chs as f64 * bs.expand, 8, 0.9),
                )?;
                self.unit(
                    p,
                    &mut body,
                    &mut tf,
                    Unit::new(
                        UnitRole::Expand,
                        "conv_pw",
                        "bn1",
                        (in_chs, mid),
                        &bs.exp_kernel,
                    )
                    .act("act1", block_act),
                );
                self.unit(
                    p,
                    &mut body,
                    &mut tf,
                    Unit::new(
                        UnitRole::Depthwise,
                        "conv_dw",
                        "bn2",
                        (mid, mid),
                        &bs.kernel,
                    )
                    .depthwise(stride)
                    .act("act2", block_act),
                );
                body.extend(self.squeeze_excite(p, bs, mid, block_act, tf.as_ref())?);
                self.unit(
                    p,
                    &mut body,
                    &mut tf,
                    Unit::new(
                        UnitRole::Project,
                        "conv_pwl",
                        "bn3",
                        (mid, out_chs),
                        &bs.pw_kernel,
                    ),
                );
                if experts > 0 {
                    // CondConvResidual: the three convs are CondConv2d, routed from the block
                    // input.
                    for op in &mut body {
                        if let Op::Conv(c) = op {
                            c.experts = experts;
                        }
                    }
                    body = vec![Op::CondConv {
                        routing: Linear {
                            name: format!("{p}.routing_fn"),
                            in_features: in_chs,
                            out_features: experts,
                            source: tf.as_ref().and_then(BlockNames::routing),
                        },
                        body,
                    }];
                }
                skip_ok && bs.skip != Some(false)
            }
            BlockKind::EdgeResidual => {
                let base = if bs.force_in_chs > 0 {
                    round_channels(bs.force_in_chs, self.cfg.width)
                } else {
                    in_chs
                };
                let mid = self.channels(
                    "expanded channels",
                    make_divisible(base as f64 * bs.expand, 8, 0.9),
                )?;
                self.unit(
                    p,
                    &mut body,
                    &mut tf,
                    Unit::new(
                        UnitRole::Expand,
                        "conv_exp",
                        "bn1",
                        (in_chs, mid),
                        &bs.kernel,
                    )
                    .strided(stride)
                    .act("act1", block_act),
                );
                body.extend(self.squeeze_excite(p, bs, mid, block_act, tf.as_ref())?);
                self.unit(
                    p,
                    &mut body,
                    &mut tf,
                    Unit::new(
                        UnitRole::Project,
                        "conv_pwl",
                        "bn2",
                        (mid, out_chs),
                        &bs.pw_kernel,
                    ),
                );
                skip_ok && bs.skip != Some(false)
            }
            BlockKind::ConvBnAct => {
                self.unit(
                    p,
                    &mut body,
                    &mut tf,
                    Unit::new(UnitRole::Conv, "conv", "bn1", (in_chs, out_chs), &bs.kernel)
                        .strided(stride)
                        .act("act1", block_act),
                );
                skip_ok && bs.skip == Some(true)
            }
        };
        Ok(Op::Scope {
            module: p.to_owned(),
            body: if has_skip {
                vec![Op::Residual(body)]
            } else {
                body
            },
        })
    }
}

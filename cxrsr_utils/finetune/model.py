"""The training model: realesrgan's RealESRGANModel, device-agnostic, with the study's variants.

What breaks off-GPU in realesrgan/basicsr's model, and where it is solved (once each, no edits
to site-packages):

- ``RealESRGANModel.__init__`` builds DiffJPEG and USMSharp with ``.cuda()``;
  ``_dequeue_and_enqueue`` makes its pair pool with ``.cuda()``:
  :class:`CxrRealESRGANModel` builds them on the model's device.
- On CPU, DiffJPEG returns a non-contiguous tensor that ``filter2D`` cannot ``.view()``:
  :func:`cxrsr_utils.degradation.pipeline.degrade_batch`, the model's degradation, makes it
  contiguous.
- ``BaseModel.save_network`` writes straight to the final path and, after three failed
  tries, logs "Just ignore it" and returns: ``CxrRealESRGANModel.save_network`` writes
  every checkpoint file through :mod:`cxrsr_utils.finetune.checkpoints` (temporary file, loaded
  back,
  renamed; an error raises).
- DDP on CPU: basicsr passes ``device_ids=[torch.cuda.current_device()]``:
  ``CxrRealESRGANModel.model_to_device``.

Importing this module registers the model with basicsr under
:data:`cxrsr_utils.finetune.options.MODEL_TYPE`, the ``model_type`` of the options.
"""

from __future__ import annotations

from cxrsr_utils.sr import upstream as sr_backend  # noqa: F401  (the basicsr import shim, before basicsr)

# isort: split

import contextlib
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from basicsr.archs import vgg_arch
from basicsr.data.transforms import paired_random_crop
from basicsr.models.sr_model import SRModel
from basicsr.models.srgan_model import SRGANModel
from basicsr.utils.dist_util import master_only
from basicsr.utils.registry import MODEL_REGISTRY
from torch.nn.parallel import DistributedDataParallel

from cxrsr_utils.core.repro import rng_state
from cxrsr_utils.degradation import pipeline as degrade
from cxrsr_utils.external import sources
from cxrsr_utils.finetune import checkpoints
from cxrsr_utils.finetune import speed as finetune_speed
from cxrsr_utils.finetune.options import MODEL_TYPE
from cxrsr_utils.sr.upstream import DiffJPEG, RealESRGANModel, USMSharp


@contextlib.contextmanager
def vgg_weights(path: str | None) -> Iterator[None]:
    """Point basicsr's VGGFeatureExtractor at our resolved VGG19 file while losses are built.

    basicsr reads the module constant VGG_PRETRAIN_PATH (relative to the working folder)
    and otherwise downloads; this is its one configuration point.
    """
    old = vgg_arch.VGG_PRETRAIN_PATH
    if path:
        vgg_arch.VGG_PRETRAIN_PATH = path
    try:
        with warnings.catch_warnings():
            # basicsr builds VGG with torchvision's deprecated ``pretrained=`` argument.
            warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
            yield
    finally:
        vgg_arch.VGG_PRETRAIN_PATH = old


class CxrRealESRGANModel(RealESRGANModel):
    """realesrgan's RealESRGANModel, device-agnostic, with our degradation and variants.

    - builds DiffJPEG/USMSharp and the training-pair pool on ``self.device`` (CPU or GPU);
    - ``feed_data`` degrades with :func:`cxrsr_utils.degradation.pipeline.degrade_batch`
    (realesrgan's
      two-stage pipeline, or bicubic x4 for the matched variants), then crops, pools and
      re-sharpens exactly as realesrgan;
    - ``cxrsr.loss == "l1"`` trains the generator with the pixel loss only (no discriminator);
    - with a discriminator, logs its accuracy on the real and the fake patches of each step
      (``d_acc_real``, ``d_acc_fake``: :func:`discriminator_accuracy`);
    - optional bf16 autocast around the optimisation step, and the speed switches
      (channels_last, ``torch.compile``, cudnn.benchmark: :mod:`cxrsr_utils.finetune.speed`)
      on the networks a step runs, never on the EMA generator;
    - DDP on CPU (gloo), atomic training states that also carry the RNG states (and the
      validation curve so far, ``validation_state``, set by the training loop).
    """

    def __init__(self, opt: dict[str, Any]) -> None:
        self.speed = opt["cxrsr"].get(finetune_speed.SPEED_OPTION, {})  # model_to_device's too
        # RealESRGANModel.__init__ only adds .cuda() copies of these two modules and the pool
        # size, so run the class above it and make the same members on our device.
        SRGANModel.__init__(self, opt)
        self.jpeger = DiffJPEG(differentiable=False).to(self.device)
        self.usm_sharpener = USMSharp().to(self.device)
        self.queue_size = opt.get("queue_size", 180)
        finetune_speed.speed_up(self, self.speed)

    @property
    def uses_gan(self) -> bool:
        return self.opt["cxrsr"]["loss"] == "gan"

    @property
    def uses_usm(self) -> bool:
        """Whether a step reads ``gt_usm``: realesrgan's GAN step always does (its perceptual
        and GAN targets may), the L1-only step only with ``l1_gt_usm``."""
        return self.uses_gan or bool(self.opt.get("l1_gt_usm"))

    def get_optimizer(
        self, optim_type: str, params: Any, lr: float, **kwargs: Any
    ) -> torch.optim.Optimizer:
        """basicsr's Adam, fused where torch has a fused kernel for the device (CPU, CUDA): the
        same update in one pass over all parameters instead of a few ops per tensor (an RRDBNet
        Adam step: 37 ms per tensor, 7 ms fused on an AMD EPYC with AVX2). Rounding only."""
        if optim_type == "Adam" and self.device.type in ("cpu", "cuda"):
            kwargs.setdefault("fused", True)
        return super().get_optimizer(optim_type, params, lr, **kwargs)

    @torch.no_grad()
    def model_ema(self, decay: float = 0.999) -> None:
        """basicsr's EMA update (``ema = ema * decay + g * (1 - decay)``, the same two ops in
        the same order, so the same numbers) over all tensors at once with torch's
        ``_foreach`` kernels instead of two calls per tensor (about 700 here)."""
        net_g = dict(self.get_bare_model(self.net_g).named_parameters())
        ema = dict(self.net_g_ema.named_parameters())
        averaged = [ema[k].data for k in ema]
        torch._foreach_mul_(averaged, decay)
        torch._foreach_add_(averaged, [net_g[k].data for k in ema], alpha=1 - decay)

    def init_training_settings(self) -> None:
        if self.opt["train"].get("perceptual_opt") and not self.opt["path"].get("vgg19"):
            raise sources.SourceError(
                "The perceptual loss needs VGG19 weights but options path.vgg19 is empty; build "
                "the options with build_options() (it resolves them) or set perceptual_weight=0."
            )
        with vgg_weights(self.opt["path"].get("vgg19")):
            if self.uses_gan:
                super().init_training_settings()
            else:
                SRModel.init_training_settings(self)

    def setup_optimizers(self) -> None:
        if self.uses_gan:
            super().setup_optimizers()
        else:
            SRModel.setup_optimizers(self)  # SRGANModel's would also want an optim_d

    def model_to_device(self, net: torch.nn.Module) -> torch.nn.Module:
        net = finetune_speed.in_memory_format(net, self.speed)  # before DDP lays out buckets
        if self.opt["dist"] and self.device.type == "cpu":
            # basicsr passes device_ids=[torch.cuda.current_device()], which CPU DDP rejects.
            return DistributedDataParallel(
                net.to(self.device),
                find_unused_parameters=self.opt.get("find_unused_parameters", False),
            )
        return super().model_to_device(net)

    @torch.no_grad()
    def _dequeue_and_enqueue(self) -> None:
        if not hasattr(self, "queue_lr"):
            # realesrgan makes the pool with .cuda(); make it here on our device first.
            b, c, h, w = self.lq.size()
            if self.queue_size % b:
                raise ValueError(f"queue_size {self.queue_size} is not divisible by the batch {b}.")
            self.queue_lr = torch.zeros(self.queue_size, c, h, w, device=self.device)
            _, c, h, w = self.gt.size()
            self.queue_gt = torch.zeros(self.queue_size, c, h, w, device=self.device)
            self.queue_ptr = 0
        super()._dequeue_and_enqueue()

    @torch.no_grad()
    def feed_data(self, data: dict[str, Any]) -> None:
        if not self.is_train:
            super().feed_data(data)
            return
        self.gt = data["gt"].to(self.device)
        result = degrade.degrade_batch(
            self.gt,
            kernel1=data["kernel1"].to(self.device),
            kernel2=data["kernel2"].to(self.device),
            sinc_kernel=data["sinc_kernel"].to(self.device),
            options=self.opt,
            jpeger=self.jpeger,
            usm_sharpener=self.usm_sharpener,
            mode=self.opt["cxrsr"]["degradation"],
            scale=self.opt["scale"],
        )
        # realesrgan crops [gt, gt_usm] here, but re-sharpens the crop after the pool anyway.
        self.gt, self.lq = paired_random_crop(
            [self.gt], result.lr, self.opt["gt_size"], self.opt["scale"]
        )
        self._dequeue_and_enqueue()
        # The L1-only arms without l1_gt_usm never read gt_usm: sharpening there cost a 51 x 51
        # filter per crop for nothing, so gt_usm is the plain HR (the same tensor, no copy).
        self.gt_usm = degrade.sharpen(self.usm_sharpener, self.gt) if self.uses_usm else self.gt
        self.lq = self.lq.contiguous()
        finetune_speed.inputs_like_networks(self, self.speed)

    def optimize_parameters(self, current_iter: int) -> None:
        bf16 = self.opt["cxrsr"].get("autocast") == "bf16"
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=bf16):
            if self.uses_gan:
                with discriminator_step_outputs(self.get_bare_model(self.net_d)) as seen:
                    super().optimize_parameters(current_iter)
                self._log_discriminator_accuracy(seen)
            else:
                self._optimize_pixel_only()

    def _log_discriminator_accuracy(self, seen: list[torch.Tensor]) -> None:
        """Add d_acc_real / d_acc_fake (:func:`discriminator_accuracy`) to the step's log."""
        if len(seen) != 2:
            raise RuntimeError(
                f"Expected the discriminator step to score one real and one fake batch, saw "
                f"{len(seen)} calls; realesrgan's optimize_parameters changed?"
            )
        real, fake = discriminator_accuracy(seen[0], seen[1])
        self.log_dict.update(self.reduce_loss_dict(OrderedDict(d_acc_real=real, d_acc_fake=fake)))

    def _optimize_pixel_only(self) -> None:
        """SRModel's step, but against gt_usm when l1_gt_usm (realesrnet's convention)."""
        target = self.gt_usm if self.opt["l1_gt_usm"] else self.gt
        self.optimizer_g.zero_grad()
        self.output = self.net_g(self.lq)
        l_g_pix = self.cri_pix(self.output, target)
        l_g_pix.backward()
        self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(OrderedDict(l_g_pix=l_g_pix))
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def save(self, epoch: int, current_iter: int) -> None:
        if self.uses_gan:
            super().save(epoch, current_iter)
        else:
            SRModel.save(self, epoch, current_iter)

    @master_only
    def save_network(
        self, net: Any, net_label: str, current_iter: int, param_key: str | list[str] = "params"
    ) -> None:
        # basicsr writes straight to the final path and, after three failed tries, logs "Just
        # ignore it" and returns: a full disk left a torn net_g_N.pth behind a normal return.
        # Write through a temporary file that must load back, and raise on failure.
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        checkpoints.save(
            checkpoints.network_dict(nets, keys),
            checkpoints.network_file(self.opt, net_label, current_iter),
        )

    @master_only
    def save_training_state(self, epoch: int, current_iter: int) -> None:
        # basicsr's state, written atomically (a crash never leaves a truncated newest state),
        # plus what makes a resumed run continue exactly: the RNG states, the position in the
        # epoch (``loop_state``, set by the training loop) and realesrgan's training-pair pool.
        if current_iter == -1:
            return
        state = {
            "epoch": epoch,
            "iter": current_iter,
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "rng": rng_state(),
            "loop": dict(getattr(self, "loop_state", {})),
            "pool": self._pool_state(),
            # The validation curve and its best point so far (finetune_validation), if any.
            "validation": getattr(self, "validation_state", None),
        }
        checkpoints.save(state, Path(self.opt["path"]["training_states"]) / f"{current_iter}.state")

    def _pool_state(self) -> dict[str, Any] | None:
        """The pair pool as uint8: its LR are 8-bit quantized and its HR come from 8-bit
        files, so the bytes hold it exactly at a quarter of the float size."""
        if not hasattr(self, "queue_lr"):
            return None
        return {
            "lr": _to_bytes(self.queue_lr),
            "gt": _to_bytes(self.queue_gt),
            "ptr": int(self.queue_ptr),
        }

    def restore_pool(self, pool: Mapping[str, Any] | None) -> None:
        """Put back a pool saved by :meth:`save_training_state`."""
        if pool is None:
            return
        self.queue_lr = pool["lr"].to(self.device, torch.float32) / 255.0
        self.queue_gt = pool["gt"].to(self.device, torch.float32) / 255.0
        self.queue_ptr = int(pool["ptr"])


def discriminator_accuracy(
    real_logits: torch.Tensor, fake_logits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Share of real patches the discriminator scores real (logit > 0) and of fake patches it
    scores fake (logit < 0): the UNet discriminator gives one logit per pixel, i.e. per patch
    of its receptive field. A logit of exactly 0 counts as wrong for both. Chance is 0.5 for
    their mean, whatever the discriminator's bias."""
    real = (real_logits.detach() > 0).float().mean()
    fake = (fake_logits.detach() < 0).float().mean()
    return real, fake


@contextlib.contextmanager
def discriminator_step_outputs(net_d: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the discriminator's outputs in its own update (real batch first, then fake).

    realesrgan's ``optimize_parameters`` calls the discriminator three times: on the
    generator's output for the generator's GAN loss (the discriminator's parameters frozen,
    ``requires_grad`` False), then on the real and the fake batch for its own update
    (``requires_grad`` True). A forward hook keeps the last two without touching the step.
    """
    seen: list[torch.Tensor] = []
    first = next(net_d.parameters())

    def hook(module: torch.nn.Module, args: Any, output: torch.Tensor) -> None:
        if first.requires_grad:
            seen.append(output.detach())

    handle = net_d.register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def _to_bytes(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp((x * 255.0).round(), 0, 255).to(torch.uint8).cpu()


if MODEL_TYPE not in MODEL_REGISTRY:
    MODEL_REGISTRY.register(CxrRealESRGANModel)

"""BibTeX for the paper cifarb implements and for the data, models and methods it uses (no imports beyond stdlib)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Citation:
    key: str
    what: str  # one line: what to cite it for
    bibtex: str


_ENTRIES = (
    Citation("chiu2023better", "the paper: CIFAR10-B/CIFAR100-B, MacroStd, FlowAug", """\
@inproceedings{chiu2023better,
  author    = {Chiu, Ming-Chang and Chen, Pin-Yu and Ma, Xuezhe},
  title     = {Better May Not Be Fairer: A Study on Subgroup Discrepancy in Image Classification},
  booktitle = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  pages     = {4956--4966},
  year      = {2023},
  eprint    = {2212.08649},
  archivePrefix = {arXiv}
}"""),
    Citation("krizhevsky2009learning", "CIFAR-10 and CIFAR-100 (also the images of the demo sample)", """\
@techreport{krizhevsky2009learning,
  author      = {Krizhevsky, Alex},
  title       = {Learning Multiple Layers of Features from Tiny Images},
  institution = {University of Toronto},
  year        = {2009}
}"""),
    Citation("hendrycks2019benchmarking", "CIFAR-10-C and CIFAR-100-C", """\
@inproceedings{hendrycks2019benchmarking,
  author    = {Hendrycks, Dan and Dietterich, Thomas},
  title     = {Benchmarking Neural Network Robustness to Common Corruptions and Perturbations},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2019},
  eprint    = {1903.12261},
  archivePrefix = {arXiv}
}"""),
    Citation("recht2018cifar", "CIFAR-10.1 (dataset release)", """\
@article{recht2018cifar,
  author  = {Recht, Benjamin and Roelofs, Rebecca and Schmidt, Ludwig and Shankar, Vaishaal},
  title   = {Do {CIFAR}-10 Classifiers Generalize to {CIFAR}-10?},
  journal = {arXiv preprint arXiv:1806.00451},
  year    = {2018}
}"""),
    Citation("recht2019imagenet", "CIFAR-10.1 (the study its authors ask to cite with it)", """\
@inproceedings{recht2019imagenet,
  author    = {Recht, Benjamin and Roelofs, Rebecca and Schmidt, Ludwig and Shankar, Vaishaal},
  title     = {Do {ImageNet} Classifiers Generalize to {ImageNet}?},
  booktitle = {Proceedings of the 36th International Conference on Machine Learning (ICML)},
  series    = {Proceedings of Machine Learning Research},
  volume    = {97},
  year      = {2019},
  eprint    = {1902.10811},
  archivePrefix = {arXiv}
}"""),
    Citation("he2016resnet", "ResNet architecture (zoo models)", """\
@inproceedings{he2016resnet,
  author    = {He, Kaiming and Zhang, Xiangyu and Ren, Shaoqing and Sun, Jian},
  title     = {Deep Residual Learning for Image Recognition},
  booktitle = {Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages     = {770--778},
  year      = {2016},
  eprint    = {1512.03385},
  archivePrefix = {arXiv}
}"""),
    Citation("idelbayev2018resnet", "the pretrained CIFAR-10 ResNet20-110 weights (zoo, demo)", """\
@misc{idelbayev2018resnet,
  author       = {Idelbayev, Yerlan},
  title        = {Proper {ResNet} Implementation for {CIFAR10/CIFAR100} in {PyTorch}},
  howpublished = {\\url{https://github.com/akamaster/pytorch_resnet_cifar10}},
  year         = {2018}
}"""),
    Citation("kingma2018glow", "Glow, the flow family FlowAug builds on", """\
@inproceedings{kingma2018glow,
  author    = {Kingma, Diederik P. and Dhariwal, Prafulla},
  title     = {Glow: Generative Flow with Invertible 1x1 Convolutions},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  volume    = {31},
  year      = {2018},
  eprint    = {1807.03039},
  archivePrefix = {arXiv}
}"""),
    Citation("ma2021decoupling", "the decoupled global/local generative flow FlowAug uses", """\
@inproceedings{ma2021decoupling,
  author    = {Ma, Xuezhe and Kong, Xiang and Zhang, Shanghang and Hovy, Eduard},
  title     = {Decoupling Global and Local Representations via Invertible Generative Flows},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2021},
  eprint    = {2004.11820},
  archivePrefix = {arXiv}
}"""),
    Citation("hendrycks2020augmix", "AugMix augmentation", """\
@inproceedings{hendrycks2020augmix,
  author    = {Hendrycks, Dan and Mu, Norman and Cubuk, Ekin D. and Zoph, Barret and Gilmer, Justin and
               Lakshminarayanan, Balaji},
  title     = {{AugMix}: A Simple Data Processing Method to Improve Robustness and Uncertainty},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2020},
  eprint    = {1912.02781},
  archivePrefix = {arXiv}
}"""),
    Citation("cubuk2019autoaugment", "AutoAugment augmentation", """\
@inproceedings{cubuk2019autoaugment,
  author    = {Cubuk, Ekin D. and Zoph, Barret and Man{\\'e}, Dandelion and Vasudevan, Vijay and Le, Quoc V.},
  title     = {{AutoAugment}: Learning Augmentation Strategies From Data},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2019},
  eprint    = {1805.09501},
  archivePrefix = {arXiv}
}"""),
    Citation("cubuk2020randaugment", "RandAugment augmentation", """\
@inproceedings{cubuk2020randaugment,
  author    = {Cubuk, Ekin D. and Zoph, Barret and Shlens, Jonathon and Le, Quoc V.},
  title     = {{RandAugment}: Practical Automated Data Augmentation with a Reduced Search Space},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition Workshops (CVPRW)},
  year      = {2020},
  eprint    = {1909.13719},
  archivePrefix = {arXiv}
}"""),
    Citation("muller2021trivialaugment", "TrivialAugment augmentation", """\
@inproceedings{muller2021trivialaugment,
  author    = {M{\\"u}ller, Samuel G. and Hutter, Frank},
  title     = {{TrivialAugment}: Tuning-free Yet State-of-the-Art Data Augmentation},
  booktitle = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  year      = {2021},
  eprint    = {2103.10158},
  archivePrefix = {arXiv}
}"""),
    Citation("zhang2018mixup", "MixUp augmentation", """\
@inproceedings{zhang2018mixup,
  author    = {Zhang, Hongyi and Cisse, Moustapha and Dauphin, Yann N. and Lopez-Paz, David},
  title     = {mixup: Beyond Empirical Risk Minimization},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2018},
  eprint    = {1710.09412},
  archivePrefix = {arXiv}
}"""),
    Citation("yun2019cutmix", "CutMix augmentation", """\
@inproceedings{yun2019cutmix,
  author    = {Yun, Sangdoo and Han, Dongyoon and Oh, Seong Joon and Chun, Sanghyuk and Choe, Junsuk and Yoo, Youngjoon},
  title     = {{CutMix}: Regularization Strategy to Train Strong Classifiers with Localizable Features},
  booktitle = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  year      = {2019},
  eprint    = {1905.04899},
  archivePrefix = {arXiv}
}"""),
    Citation("devries2017cutout", "Cutout augmentation", """\
@article{devries2017cutout,
  author  = {DeVries, Terrance and Taylor, Graham W.},
  title   = {Improved Regularization of Convolutional Neural Networks with Cutout},
  journal = {arXiv preprint arXiv:1708.04552},
  year    = {2017}
}"""),
    # the chenyaofo/pytorch-cifar-models zoo family (#14) and its architectures
    Citation("chen2021cifarmodels", "the pretrained CIFAR-10/100 ResNet/VGG/MobileNetV2/ShuffleNetV2/RepVGG weights "
             "(chenyaofo zoo)", """\
@misc{chen2021cifarmodels,
  author       = {Chen, Yaofo},
  title        = {{PyTorch} {CIFAR} Models},
  howpublished = {\\url{https://github.com/chenyaofo/pytorch-cifar-models}},
  year         = {2021}
}"""),
    Citation("simonyan2015vgg", "VGG architecture (zoo models)", """\
@inproceedings{simonyan2015vgg,
  author    = {Simonyan, Karen and Zisserman, Andrew},
  title     = {Very Deep Convolutional Networks for Large-Scale Image Recognition},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2015},
  eprint    = {1409.1556},
  archivePrefix = {arXiv}
}"""),
    Citation("sandler2018mobilenetv2", "MobileNetV2 architecture (zoo models)", """\
@inproceedings{sandler2018mobilenetv2,
  author    = {Sandler, Mark and Howard, Andrew and Zhu, Menglong and Zhmoginov, Andrey and Chen, Liang-Chieh},
  title     = {{MobileNetV2}: Inverted Residuals and Linear Bottlenecks},
  booktitle = {Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2018},
  eprint    = {1801.04381},
  archivePrefix = {arXiv}
}"""),
    Citation("ma2018shufflenetv2", "ShuffleNetV2 architecture (zoo models)", """\
@inproceedings{ma2018shufflenetv2,
  author    = {Ma, Ningning and Zhang, Xiangyu and Zheng, Hai-Tao and Sun, Jian},
  title     = {{ShuffleNet V2}: Practical Guidelines for Efficient {CNN} Architecture Design},
  booktitle = {Proceedings of the European Conference on Computer Vision (ECCV)},
  year      = {2018},
  eprint    = {1807.11164},
  archivePrefix = {arXiv}
}"""),
    Citation("ding2021repvgg", "RepVGG architecture (zoo models)", """\
@inproceedings{ding2021repvgg,
  author    = {Ding, Xiaohan and Zhang, Xiangyu and Ma, Ningning and Han, Jungong and Ding, Guiguang and Sun, Jian},
  title     = {{RepVGG}: Making {VGG}-style {ConvNets} Great Again},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2021},
  eprint    = {2101.03697},
  archivePrefix = {arXiv}
}"""),
    Citation("jordan2024airbench", "airbench, the fast CIFAR-10 recipe fastnet follows", """\
@article{jordan2024airbench,
  author  = {Jordan, Keller},
  title   = {94\\% on {CIFAR-10} in 3.29 Seconds on a Single {GPU}},
  journal = {arXiv preprint arXiv:2404.00498},
  year    = {2024}
}"""),
    Citation("torchvision2016", "torchvision and its ImageNet weights (resnet18_imagenet, resnet50_imagenet)", """\
@misc{torchvision2016,
  author       = {{TorchVision maintainers and contributors}},
  title        = {{TorchVision}: {PyTorch}'s Computer Vision library},
  howpublished = {\\url{https://github.com/pytorch/vision}},
  year         = {2016}
}"""),
    Citation("cifarb", "cifarb itself (this software; see CITATION.cff)", """\
@misc{cifarb,
  author       = {{cifarb developers}},
  title        = {cifarb: subgroup discrepancy evaluation and training on {CIFAR10-B} / {CIFAR100-B}},
  howpublished = {Python package, version 0.1.0},
  year         = {2026}
}"""),
)

CITATIONS: dict[str, Citation] = {c.key: c for c in _ENTRIES}

# What `cifarb cite` prints by default: the paper, the data and the zoo models.
DEFAULT_KEYS: tuple[str, ...] = (
    "chiu2023better",
    "krizhevsky2009learning",
    "hendrycks2019benchmarking",
    "recht2018cifar",
    "recht2019imagenet",
    "he2016resnet",
    "idelbayev2018resnet",
    "jordan2024airbench",
    "torchvision2016",
    "cifarb",
)

# Augmentation / method name -> what to cite when a run used it.
METHOD_KEYS: dict[str, tuple[str, ...]] = {
    "flowaug": ("chiu2023better", "ma2021decoupling", "kingma2018glow"),
    "augmix": ("hendrycks2020augmix",),
    "autoaugment": ("cubuk2019autoaugment",),
    "randaugment": ("cubuk2020randaugment",),
    "trivialaugment": ("muller2021trivialaugment",),
    "mixup": ("zhang2018mixup",),
    "cutmix": ("yun2019cutmix",),
    "cutout": ("devries2017cutout",),
}

# Architecture name (`--arch`) -> what to cite when a run used it. zagoruyko2016wide's entry ships
# with the reference-model cards (cifarb/reference/cards.json), so `cifarb cite` resolves it there.
ARCH_KEYS: dict[str, tuple[str, ...]] = {
    "wrn28_10": ("zagoruyko2016wide",),
    "fastnet": ("jordan2024airbench",),
    "resnet18": ("he2016resnet",),
    "resnet18_imagenet": ("he2016resnet", "torchvision2016"),
    "resnet50_imagenet": ("he2016resnet", "torchvision2016"),
}


def bibtex(keys: tuple[str, ...] | list[str] | None = None) -> str:
    """The BibTeX entries for `keys` (default DEFAULT_KEYS), separated by blank lines; KeyError if unknown."""
    chosen = DEFAULT_KEYS if keys is None else tuple(dict.fromkeys(keys))
    return "\n\n".join(CITATIONS[k].bibtex for k in chosen) + "\n"

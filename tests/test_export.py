"""Export to plain torch works on the escnn models people write: average pooling (plain and antialiased, 2D and
3D), group pooling over fields of different sizes, torch roots holding escnn modules; outputs identical."""
import pytest
import torch
from torch import nn

from equislt.nn import GeometricAdapter, export, supermask


def _no_escnn_module(model: nn.Module) -> bool:
    from escnn import nn as enn

    return not any(isinstance(m, enn.EquivariantModule) for m in model.modules())


def _mixed_c8():
    from escnn import gspaces, nn as enn

    space = gspaces.rot2dOnR2(8)
    inputs = enn.FieldType(space, [space.trivial_repr])
    hidden = enn.FieldType(space, [space.regular_repr, space.quotient_repr(2), space.trivial_repr, space.regular_repr])
    return inputs, enn.SequentialModule(
        enn.R2Conv(inputs, hidden, 3, padding=1), enn.ReLU(hidden), enn.PointwiseAvgPool2D(hidden, 2),
        enn.R2Conv(hidden, hidden, 3, padding=1), enn.InnerBatchNorm(hidden),
        enn.PointwiseAvgPoolAntialiased2D(hidden, 0.66, 2), enn.GroupPooling(hidden))


def test_a_sequential_module_root_with_mixed_fields_exports_exactly():
    from escnn import nn as enn

    inputs, model = _mixed_c8()
    supermask(model, sparsity=0.5, seed=1)
    with torch.no_grad():  # batch-norm statistics that are not the identity
        model.train()(enn.GeometricTensor(3 * torch.rand(8, 1, 17, 17) + 1, inputs))
    model.eval()
    x = torch.randn(3, 1, 17, 17)
    with torch.no_grad():
        expected = model(enn.GeometricTensor(x, inputs)).tensor
        plain = export(model)
        assert _no_escnn_module(plain) and isinstance(plain, nn.Sequential)
        assert torch.allclose(plain(x), expected, atol=1e-6, rtol=0)
        assert plain(x).shape == (3, 4, 4, 4)  # one channel per field: sizes 8, 2, 1, 8 pooled


class TorchRoot(nn.Module):
    def __init__(self):
        super().__init__()
        self.inputs, self.body = _mixed_c8()
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        from escnn import nn as enn

        return self.head(self.body(enn.GeometricTensor(x, self.inputs)).tensor.mean(dim=(2, 3)))


def test_a_torch_root_keeps_its_forward_and_loses_its_escnn_modules():
    model = TorchRoot()
    supermask(model, sparsity=0.3)
    with torch.no_grad():
        model.train()(3 * torch.rand(8, 1, 17, 17) + 1)
    model.eval()
    x = torch.randn(2, 1, 17, 17)
    with torch.no_grad():
        expected = model(x)
        plain = export(model)
        assert _no_escnn_module(plain) and isinstance(plain.body, GeometricAdapter)
        assert torch.allclose(plain(x), expected, atol=1e-6, rtol=0)
    assert model.body.__class__.__name__ == "SequentialModule"  # the original is untouched


def test_octahedral_3d_layers_and_3d_average_pooling_export():
    from escnn import gspaces, nn as enn

    space = gspaces.octaOnR3()
    inputs = enn.FieldType(space, [space.trivial_repr])
    hidden = enn.FieldType(space, [space.regular_repr])
    model = enn.SequentialModule(enn.R3Conv(inputs, hidden, 3, padding=1), enn.ReLU(hidden),
                                 enn.PointwiseAvgPool3D(hidden, 2), enn.PointwiseAvgPoolAntialiased3D(hidden, 0.5, 1),
                                 enn.GroupPooling(hidden)).eval()
    x = torch.randn(1, 1, 7, 7, 7)
    with torch.no_grad():
        expected = model(enn.GeometricTensor(x, inputs)).tensor
        plain = export(model)
        assert _no_escnn_module(plain)
        assert torch.allclose(plain(x), expected, atol=1e-6, rtol=0)


def test_an_escnn_module_without_a_plain_form_is_named():
    from escnn import gspaces, nn as enn

    space = gspaces.rot2dOnR2(4)
    field = enn.FieldType(space, [space.irrep(1)])
    with pytest.raises(TypeError, match="export: escnn's NormNonLinearity has no plain torch form"):
        export(enn.NormNonLinearity(field).eval())

"""The README's Python example, runnable: ``python examples/quickstart.py`` from the repository root.

Loads the shipped digits classifier, finds the image whose logits come closest (in l1) to those
of an idealized, very confident "3" and proves with HiGHS that no image comes closer, then
optimizes a logit margin, decides a feasibility question and checks a VNN-LIB property
(``examples/models/property.vnnlib``). About half a minute on a CPU.
"""

import numpy as np

import netopt

net = netopt.load("examples/models/digits_mlp.onnx")  # or netopt.from_torch(module, example_input)
print(net)  # <Network ...: 5 ops, input (64,), output (10,), 64 ReLUs>
y = net(np.full(64, 0.5))  # float64 reference forward pass (batched too)

target = np.zeros(10)
target[3] = 10.0  # "a very confident 3"
prob = netopt.Inversion(net, target, norm=1, box=(0.0, 1.0))
res = prob.solve("milp", solver="highs", time_limit=60)  # formulation first, backend second
print(res.status, res.objective, res.bound, res.gap)  # and res.x, res.y
res.certificate.verify(net)  # re-checks x, f(x) (onnxruntime) and the objective

netopt.OutputObjective(net, c=np.eye(10)[3] - np.eye(10)[8], sense="max", box=(0, 1)).solve()
print(netopt.Feasibility(net, target, tol=0.5, box=(0, 1)).solve().verdict)  # "sat" / "unsat"
# VNN-LIB: no image near a shipped "3" is classified otherwise (the file says which)
print(netopt.check(net, "examples/models/property.vnnlib").verdict)  # "unsat": the property holds

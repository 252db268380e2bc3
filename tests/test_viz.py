"""Tests for viz.py: DOT source, the text tree, and render() with and without Graphviz."""
import io
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tinygrad_reparam import Tensor
from tinygrad_reparam import viz

NODE_STATEMENT = re.compile(r"^\s*(t\d+) \[(.*)\];$")
EDGE_STATEMENT = re.compile(r"^\s*(t\d+) -> (t\d+)(?: \[(.*)\])?;$")


# ---------------------------------------------------------------------------------------------
# Helpers: read back what to_dot wrote
def node_statements(dot: str) -> dict:
    """Node name -> its attribute text, failing on a node declared twice."""
    nodes = {}
    for line in dot.splitlines():
        match = NODE_STATEMENT.match(line)
        if match:
            assert match.group(1) not in nodes, f"node {match.group(1)} declared twice"
            nodes[match.group(1)] = match.group(2)
    return nodes


def edge_statements(dot: str) -> list:
    """(parent name, child name, attribute text) for every edge."""
    edges = []
    for line in dot.splitlines():
        match = EDGE_STATEMENT.match(line)
        if match:
            edges.append((match.group(1), match.group(2), match.group(3) or ""))
    return edges


def labels(dot: str) -> list:
    """The label of every node, with DOT's escapes undone."""
    found = []
    for attributes in node_statements(dot).values():
        match = re.search(r'label="((?:[^"\\]|\\.)*)"', attributes)
        assert match, attributes
        found.append(match.group(1).replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\"))
    return found


def node_named(dot: str, op: str) -> str:
    """The name of the one node whose label starts with ``op``."""
    names = [name for name, attributes in node_statements(dot).items()
             if re.search(r'label="' + re.escape(op) + r"\\n", attributes)]
    assert len(names) == 1, (op, names)
    return names[0]


def check_dot_syntax(dot: str) -> None:
    """Quotes closed on every line, braces balanced outside quotes, every line a statement."""
    lines = dot.strip().splitlines()
    assert lines[0].startswith("digraph") and lines[0].endswith("{")
    assert lines[-1] == "}"
    depth = 0
    for line in lines:
        inside_quotes = False
        i = 0
        while i < len(line):
            char = line[i]
            if inside_quotes and char == "\\":
                i += 2  # an escaped character, whatever it is
                continue
            if char == '"':
                inside_quotes = not inside_quotes
            elif not inside_quotes and char == "{":
                depth += 1
            elif not inside_quotes and char == "}":
                depth -= 1
                assert depth >= 0, line
            i += 1
        assert not inside_quotes, f"unclosed quote in {line!r}"
        assert line in (lines[0], "}") or line.endswith(";"), line
    assert depth == 0


# ---------------------------------------------------------------------------------------------
# to_dot
def test_dot_is_a_digraph_with_balanced_braces():
    a = Tensor([1.0, 2.0], requires_grad=True)
    dot = viz.to_dot((a * 3.0).sum())
    assert dot.startswith("digraph")
    assert dot.count("{") == dot.count("}") == 1
    check_dot_syntax(dot)


def test_diamond_has_one_node_per_distinct_tensor():
    a = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = a + a
    c = b * b
    dot = viz.to_dot(c)
    check_dot_syntax(dot)
    nodes = node_statements(dot)
    assert len(nodes) == 3  # a, b, c
    assert sorted(label.split("\n")[0] for label in labels(dot)) == ["add", "leaf", "mul"]
    # one arrow per use: a feeds b twice, b feeds c twice
    a_name, b_name, c_name = node_named(dot, "leaf"), node_named(dot, "add"), node_named(dot, "mul")
    pairs = sorted((parent, child) for parent, child, _ in edge_statements(dot))
    assert pairs == sorted([(a_name, b_name)] * 2 + [(b_name, c_name)] * 2)
    # the output, and only the output, has a thick border
    assert [name for name, attributes in nodes.items() if "penwidth" in attributes] == [c_name]


def test_tensor_reused_ten_times_is_one_node():
    w = Tensor([0.5, -1.0], requires_grad=True)
    total = w
    for _ in range(10):
        total = total + w  # w is an input of all ten adds
    dot = viz.to_dot(total)
    check_dot_syntax(dot)
    assert len(node_statements(dot)) == 11  # w and ten adds
    w_name = node_named(dot, "leaf")
    assert sum(parent == w_name for parent, _, _ in edge_statements(dot)) == 11


def test_dot_names_ops_and_shapes():
    x = Tensor(np.ones((2, 3)))
    w = Tensor(np.ones((3, 4)), requires_grad=True)
    loss = (x @ w).tanh().mean()
    first_lines = {tuple(label.split("\n")[:2]) for label in labels(viz.to_dot(loss))}
    assert ("matmul", "(2, 4)") in first_lines
    assert ("tanh", "(2, 4)") in first_lines
    assert ("leaf", "(3, 4)") in first_lines
    assert ("leaf", "(2, 3)") in first_lines


def test_values_shown_for_small_tensors_with_four_significant_digits():
    a = Tensor([1 / 3, 2.0, -12345.678], requires_grad=True)
    label = labels(viz.to_dot(a))[0]
    assert "data [0.3333, 2, -1.235e+04]" in label


def test_values_of_a_two_dimensional_tensor_fit_on_one_line():
    a = Tensor([[1.0, 2.0], [3.0, 4.5]])
    assert "data [[1, 2], [3, 4.5]]" in labels(viz.to_dot(a))[0].split("\n")


def test_values_hidden_for_big_tensors():
    big = Tensor(np.arange(7) + 0.125)  # 7 > max_values=6
    label = labels(viz.to_dot(big))[0]
    assert "data" not in label and "0.125" not in label
    assert "(7,)" in label
    shown = labels(viz.to_dot(big, max_values=7))[0]
    assert "data [0.125, 1.125, 2.125, 3.125, 4.125, 5.125, 6.125]" in shown


def test_grads_shown_after_backward():
    a = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    loss = (a * a).sum()
    assert not any("grad" in label for label in labels(viz.to_dot(loss)))
    loss.backward(retain_graph=True)  # keep the graph to draw it with its gradients
    leaf_label = [label for label in labels(viz.to_dot(loss)) if label.startswith("leaf")]
    assert leaf_label == ["leaf\n(3,)\ndata [1, 2, 3]\ngrad [2, 4, 6]"]


def test_big_grad_shown_as_its_norm():
    a = Tensor(np.full(10, 2.0), requires_grad=True)
    (a * 1.5).sum().backward()
    label = labels(viz.to_dot(a))[0]
    norm = np.linalg.norm(np.full(10, 1.5))
    assert f"grad norm {norm:.4g}" in label


def test_dtype_shown_when_not_float64():
    a = Tensor(np.array([1.0, 2.0], dtype=np.float32))
    assert labels(viz.to_dot(a))[0].split("\n")[1] == "(2,) float32"


def test_parameters_constants_and_ops_are_styled_differently():
    w = Tensor([1.0], requires_grad=True)
    x = Tensor([2.0])
    y = w * x
    fills = {name: viz._node_attributes(t)["fillcolor"] for name, t in
             [("parameter", w), ("input", x), ("op", y)]}
    assert len(set(fills.values())) == 3
    constant = (w * 3.0).parents[1]
    assert constant.op == "constant"
    assert viz._node_attributes(constant)["fillcolor"] == fills["input"]
    assert viz._node_attributes(w.detach())["fillcolor"] == fills["input"]
    # and the DOT output carries these styles
    dot = viz.to_dot(y)
    assert dot.count(f'fillcolor="{fills["op"]}"') == 1
    assert dot.count(f'fillcolor="{fills["parameter"]}"') == 1
    assert dot.count(f'fillcolor="{fills["input"]}"') == 1


def test_labels_are_escaped_for_dot():
    a = Tensor([1.0])
    a.op = 'we"ird\\op\nname'  # an op name with a quote, a backslash and a newline
    dot = viz.to_dot(a)
    check_dot_syntax(dot)
    assert r'label="we\"ird\\op\nname\n(1,)' in dot
    assert labels(dot)[0].split("\n")[:2] == ['we"ird\\op', "name"]


def test_quote_escapes_each_special_character():
    assert viz._quote('a"b') == r'"a\"b"'
    assert viz._quote("a\\b") == r'"a\\b"'
    assert viz._quote("a\nb") == r'"a\nb"'
    assert viz._quote('\\"') == r'"\\\""'


def test_long_chain_does_not_recurse():
    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = -y
    dot = viz.to_dot(y)
    assert dot.count("label=") == 100_001
    assert dot.count(" -> ") == 100_000
    text = viz.graph_text(y)
    lines = text.splitlines()
    assert len(lines) == 100_001
    assert lines[-1].endswith("(depth 100000) #100000 leaf ()  data 1")
    # indentation is capped, so the text stays linear in the number of nodes
    assert max(len(line) for line in lines) < 200


# ---------------------------------------------------------------------------------------------
# Display-only parents (the cut that a stochastic sample() node will make)
class DisplayOnlyParents(Tensor):
    """A stand-in for a future sample() node: no real parents (it does not require grad), but
    it records the tensors its value came from in ``display_parents``."""

    display_parents = ()  # the default; instances set their own


def make_cut_graph():
    mu = Tensor([0.0, 1.0], requires_grad=True)
    sigma = Tensor([1.0, 2.0], requires_grad=True)
    sample = DisplayOnlyParents([0.3, 2.2])
    sample.display_parents = (mu, sigma)
    weight = Tensor([2.0, 2.0], requires_grad=True)
    loss = (sample * weight).sum()
    return mu, sigma, sample, weight, loss


def test_display_parents_are_drawn_dashed_and_labelled():
    mu, sigma, sample, weight, loss = make_cut_graph()
    assert sample.parents == ()  # gradients cannot reach mu and sigma
    dot = viz.to_dot(loss)
    check_dot_syntax(dot)
    nodes = node_statements(dot)
    assert len(nodes) == 6  # mu, sigma, sample, weight, mul, sum
    edges = edge_statements(dot)
    assert len(edges) == 5
    cut_edges = [(p, c) for p, c, attributes in edges
                 if 'style="dashed"' in attributes and 'label="no gradient"' in attributes]
    solid_edges = [(p, c) for p, c, attributes in edges if attributes == ""]
    assert len(cut_edges) == 2 and len(solid_edges) == 3
    sample_names = {c for _, c in cut_edges}
    assert len(sample_names) == 1 and sample_names <= set(nodes)
    assert "data [0.3, 2.2]" in nodes[sample_names.pop()]


def test_edge_attributes_distinguish_real_and_display_parents():
    mu, sigma, sample, weight, loss = make_cut_graph()
    product = loss.parents[0]
    assert viz._edge_attributes(sample, product) == {}
    assert viz._edge_attributes(weight, product) == {}
    cut = viz._edge_attributes(mu, sample)
    assert cut["style"] == "dashed" and cut["label"] == "no gradient"


def test_text_marks_display_parents():
    *_, loss = make_cut_graph()
    lines = viz.graph_text(loss).splitlines()
    cut_lines = [line for line in lines if "[no gradient]" in line]
    assert len(cut_lines) == 2
    assert all("leaf (2,)" in line for line in cut_lines)


# ---------------------------------------------------------------------------------------------
# Text tree
def test_text_tree_back_references_instead_of_repeating():
    a = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = a + a
    c = b * b
    assert viz.graph_text(c) == textwrap.dedent("""\
        #0 mul (3,)  data [4, 16, 36]
          #1 add (3,)  data [2, 4, 6]
            #2 leaf (3,)  data [1, 2, 3]
            leaf (3,)  [see #2]
          add (3,)  [see #1]""")


def test_text_tree_of_shared_subgraph_prints_it_once():
    x = Tensor(np.ones(10), requires_grad=True)
    shared = (x * 2.0).exp().sum()  # 5 tensors: x, 2.0, mul, exp, sum
    out = shared
    for _ in range(20):
        out = out + shared
    lines = viz.graph_text(out).splitlines()
    assert sum(line.lstrip().startswith("#") for line in lines) == 20 + 5
    assert sum("[see #" in line for line in lines) == 20  # every other use of `shared`
    assert sum(" exp " in line for line in lines) == 1
    assert "data" not in "".join(line for line in lines if "(10,)" in line)  # big: no values


def test_print_graph_prints_graph_text():
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = (a * a).sum()
    b.backward(retain_graph=True)
    out = io.StringIO()
    viz.print_graph(b, file=out)
    assert out.getvalue() == viz.graph_text(b) + "\n"
    assert "grad [2, 4]" in out.getvalue()


def test_print_graph_defaults_to_stdout(capsys):
    viz.print_graph(Tensor([5.0]))
    assert capsys.readouterr().out == "#0 leaf (1,)  data [5]\n"


# ---------------------------------------------------------------------------------------------
# render
def test_render_without_dot_explains_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError) as error:
        viz.render(Tensor([1.0]), tmp_path / "graph.svg")
    message = str(error.value)
    for needed in ("dot", "not installed", "apt-get install graphviz", "brew install graphviz",
                   "conda install graphviz", "to_dot(tensor)"):
        assert needed in message
    assert not (tmp_path / "graph.svg").exists()


@pytest.mark.parametrize("name", ["graph.pdf", "graph.dot", "graph", "graph.svg.txt"])
def test_render_rejects_other_suffixes(tmp_path, name):
    with pytest.raises(ValueError) as error:
        viz.render(Tensor([1.0]), tmp_path / name)
    assert ".svg" in str(error.value) and ".png" in str(error.value)


@pytest.fixture
def fake_dot(tmp_path, monkeypatch):
    """A stand-in `dot` program: records its arguments and input, writes the input to -o, and
    fails with a message on stderr when the DOT source contains FAIL."""
    if sys.platform == "win32":
        pytest.skip("the fake dot program is a POSIX script")
    script = tmp_path / "fake_dot"
    log = tmp_path / "fake_dot_log.txt"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import sys
        source = sys.stdin.read()
        with open({str(log)!r}, "w") as log:
            log.write(repr(sys.argv[1:]) + "\\n" + source)
        if "FAIL" in source:
            sys.stderr.write("syntax error in line 1 near FAIL\\n")
            sys.exit(2)
        with open(sys.argv[sys.argv.index("-o") + 1], "w") as out:
            out.write("<svg>fake</svg>")
        """))
    script.chmod(0o755)
    monkeypatch.setattr(shutil, "which", lambda name: str(script) if name == "dot" else None)
    return log


def test_render_feeds_dot_source_on_stdin(fake_dot, tmp_path):
    a = Tensor([1.0, 2.0], requires_grad=True)
    loss = (a * a).sum()
    target = tmp_path / "graph.SVG"
    assert viz.render(loss, target) == target
    assert target.read_text() == "<svg>fake</svg>"
    arguments, source = fake_dot.read_text().split("\n", 1)
    assert eval(arguments) == ["-Tsvg", "-o", str(target)]
    assert source == viz.to_dot(loss)


def test_render_png_asks_dot_for_png(fake_dot, tmp_path):
    viz.render(Tensor([1.0]), str(tmp_path / "graph.png"))
    assert fake_dot.read_text().startswith(repr(["-Tpng", "-o", str(tmp_path / "graph.png")]))


def test_render_reports_dot_errors(fake_dot, tmp_path):
    broken = Tensor([1.0])
    broken.op = "FAIL"
    with pytest.raises(RuntimeError) as error:
        viz.render(broken, tmp_path / "graph.svg")
    assert "syntax error in line 1 near FAIL" in str(error.value)
    assert "exit code 2" in str(error.value)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_render_svg_with_real_graphviz(tmp_path):
    a = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = a + a
    loss = (b * b).sum()
    loss.backward(retain_graph=True)
    target = viz.render(loss, tmp_path / "graph.svg")
    svg = target.read_text()
    assert "<svg" in svg and "mul" in svg and "grad [8, 16, 24]" in svg
    # the source is valid DOT by Graphviz's own reading
    checked = subprocess.run([shutil.which("dot"), "-Tcanon"], input=viz.to_dot(loss).encode(),
                             capture_output=True)
    assert checked.returncode == 0, checked.stderr

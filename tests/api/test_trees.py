"""Search trees and their nodes over REST: a tree, its nodes a page at a time, filtered by depth or parent."""

from tests.factories import ProjectFactory, SearchTreeFactory, TreeNodeFactory

from .conftest import client_for
from .test_pairs import walk


def test_a_trees_nodes_page_by_page(api, people, project, round_):
    tree = SearchTreeFactory(project=project, round=round_, node_count=13)
    root = TreeNodeFactory(tree=tree, key="root")
    children = [
        TreeNodeFactory(tree=tree, parent=root, ordinal=i, fragment=f"city='C{i}'", visits=2, value_sum=1.0)
        for i in range(3)
    ]
    grandchildren = [TreeNodeFactory(tree=tree, parent=children[0], ordinal=i) for i in range(9)]
    other = SearchTreeFactory(project=project)
    TreeNodeFactory(tree=other)
    client = api("annotator")

    body = client.get(f"/api/v1/trees/{tree.pk}/").json()
    assert body["round"] == round_.pk and body["node_count"] == 13 and body["status"] == "done"
    nodes = walk(client, f"/api/v1/trees/{tree.pk}/nodes/?page_size=5")
    assert [n["id"] for n in nodes] == [root.pk, *[c.pk for c in children], *[g.pk for g in grandchildren]]
    assert nodes[1]["value"] == 0.5 and nodes[1]["depth"] == 1 and nodes[1]["parent"] == root.pk

    def ids(**params):
        return [n["id"] for n in client.get(f"/api/v1/trees/{tree.pk}/nodes/", params).json()["results"]]

    assert ids(depth=1) == [c.pk for c in children]
    assert ids(parent=children[0].pk, page_size=3) == [g.pk for g in grandchildren[:3]]
    assert client.get(f"/api/v1/trees/{tree.pk}/nodes/", {"depth": -1}).status_code == 400
    assert [t["id"] for t in client.get("/api/v1/trees/", {"round": round_.pk}).json()["results"]] == [tree.pk]


def test_other_projects_trees_are_404(api, people, project):
    elsewhere = SearchTreeFactory(project=ProjectFactory(name="elsewhere"))
    client = api("admin")
    assert client.get(f"/api/v1/trees/{elsewhere.pk}/").status_code == 404
    assert client.get(f"/api/v1/trees/{elsewhere.pk}/nodes/").status_code == 404
    mine = SearchTreeFactory(project=project)
    assert client_for(people["outsider"]).get(f"/api/v1/trees/{mine.pk}/nodes/").status_code == 404
    assert client.get("/api/v1/trees/abc/").status_code == 404

"""Logs in to a running demo as admin and checks that the demo project is browsable in the admin."""

import re
import sys
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

base, user, password = sys.argv[1:4]
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))


def get(path: str) -> str:
    with opener.open(base + path, timeout=30) as response:
        return response.read().decode()


page = get("/admin/login/")
token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
data = urllib.parse.urlencode(
    {"username": user, "password": password, "csrfmiddlewaretoken": token, "next": "/admin/"}
).encode()
request = urllib.request.Request(base + "/admin/login/", data=data, headers={"Referer": base + "/admin/login/"})
home = opener.open(request, timeout=30).read().decode()
assert "Log out" in home or "logout" in home, "login failed"
projects = get("/admin/projects/project/")
assert ">demo<" in projects, "demo project not listed"
queries = get("/admin/catalog/query/?q=env-0-000000")
assert "env-0-000000" in queries, "generated queries not listed"
tools = get("/admin/catalog/tool/")
assert "get_current_weather" in tools and "lookup_ticker" in tools, "generated tools not listed"
rounds = get("/admin/training/traininground/")
assert "reviewing" in rounds and "done" in rounds, "rounds 0 and 1 done and round 2 reviewing expected"
project_id = re.search(r"/admin/projects/project/(\d+)/change/", projects)[1]
round_pages = get(f"/projects/{project_id}/rounds/")
assert 'id="pass-rate-chart"' in round_pages and "<polyline" in round_pages, "no pass@1 chart on the rounds page"
round1 = get(f"/projects/{project_id}/rounds/1/")
assert 'id="eval-summary"' in round1 and "→" in round1, "round 1 has no before/after evaluation"
api = get("/api/v1/rounds/?project=" + project_id)
assert '"number":1' in api.replace(" ", ""), "rounds not listed by the REST API"
pairs = get("/admin/curation/preferencepair/?status__exact=pending")
assert "pair #" in pairs or "field-chosen_short" in pairs, "no pending pairs listed"
css = opener.open(base + "/static/admin/css/base.css", timeout=30)
assert css.status == 200, "static files not served"
print(
    "demo pages OK: login, projects, queries, tools, rounds (chart, round 1 before/after, REST), pending pairs, "
    "static files"
)

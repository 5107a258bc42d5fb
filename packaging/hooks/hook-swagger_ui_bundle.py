# The REST API's /docs page (app/api/app.py) serves three Swagger UI files from this package
# instead of a CDN. The package ships 8 MB: other builds of Swagger UI (es-bundle, standalone
# preset, the unbundled swagger-ui.js) and a source map of each. Bundle only the three.
from pathlib import Path

import swagger_ui_bundle

USED = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")

_folder = Path(swagger_ui_bundle.swagger_ui_path)  # vendor/swagger-ui-<version>
_dest = f"swagger_ui_bundle/vendor/{_folder.name}"
datas = [(str(_folder / name), _dest) for name in USED]

"""Content detectors: find ML artifacts and configs that make code run when a model is loaded.

Text side (remote-code triggers, Python import closures, Git LFS pointers, repository plumbing, reviewer hints):
``remote_code``, ``import_closure``, ``lfs``, ``plumbing``, ``python_hints``, orchestrated by ``scan``. Binary side
(pickles, zips, tensors): ``content``. This package imports nothing on purpose: the hook imports the detector modules it
needs lazily, only when a matching file is present in a push.
"""

"""The application: commands over configs and run folders, built on the library.

``python -m pbt_evo.run`` (:mod:`.run`: a search from a config, with :mod:`.config`, :mod:`.runfolder`,
:mod:`.checkpoint`, :mod:`.plot`), ``pbt_evo.sweep`` (:mod:`.sweep`), ``pbt_evo.compare`` (:mod:`.compare`),
``pbt_evo.plot``, ``pbt_evo.soup`` (:mod:`.soup`) and ``pbt_evo.naswot`` (:mod:`.naswot`, the study).
The library never imports this package.
"""

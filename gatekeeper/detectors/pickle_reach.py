"""What a pickle global can reach, derived from the standard library (generated, then reviewed).

Regenerate with ``python -m gatekeeper.detectors.pickle_reach_gen`` (Python 3.11); see that module for how.
"""

GENERATED_WITH = (3, 11)

# module attribute -> the module it is (find_class traverses it like any attribute)
MODULE_ALIASES: dict[str, str] = {
    '_frozen_importlib_external._io': 'io',
    '_frozen_importlib_external._os': 'posix',
    '_pydecimal._locale': 'locale',
    '_pydecimal._math': 'math',
    '_pydecimal._numbers': 'numbers',
    'argparse._os': 'os',
    'argparse._re': 're',
    'argparse._sys': 'sys',
    'cProfile._pyprofile': 'profile',
    'calendar._locale': 'locale',
    'collections._collections_abc': 'collections.abc',
    'collections._sys': 'sys',
    'contextlib._collections_abc': 'collections.abc',
    'crypt._string': 'string',
    'crypt._sys': 'sys',
    'ctypes._os': 'os',
    'ctypes._sys': 'sys',
    'ctypes._types': 'types',
    'curses._os': 'os',
    'curses._sys': 'sys',
    'enum.bltns': 'builtins',
    'hmac._hashlib': 'hashlib',
    'hmac._hashopenssl': '_hashlib',
    'hmac._warnings': 'warnings',
    'html._re': 're',
    'locale._collections_abc': 'collections.abc',
    'multiprocessing.reducer': 'multiprocessing.reduction',
    'os.path': 'posixpath',
    'os.st': 'stat',
    'pprint._collections': 'collections',
    'pprint._dataclasses': 'dataclasses',
    'pprint._sys': 'sys',
    'pprint._types': 'types',
    'random._os': 'os',
    'sre_compile._': 're._compiler',
    'sre_constants._': 're._constants',
    'sre_parse._': 're._parser',
    'ssl._socket': 'socket',
    'string._re': 're',
    'tempfile._errno': 'errno',
    'tempfile._functools': 'functools',
    'tempfile._io': 'io',
    'tempfile._os': 'os',
    'tempfile._shutil': 'shutil',
    'tempfile._sys': 'sys',
    'tempfile._types': 'types',
    'tempfile._warnings': 'warnings',
    'tempfile._weakref': 'weakref',
    'threading._os': 'os',
    'threading._sys': 'sys',
    'tokenize._itertools': 'itertools',
    'typing.stdlib_re': 're',
    'weakref._collections_abc': 'collections.abc',
    'zipimport._io': 'io',
}

# functions and methods whose code calls a sink (files, imports, code execution, processes)
REACHES: frozenset[str] = frozenset({
    '_aix_support._aix_bos_rte',  # check_output
    '_bootsubprocess.Popen.wait',  # execv, execve, fork
    '_bootsubprocess.check_output',  # open, system, unlink
    '_frozen_importlib.FrozenImporter.exec_module',  # exec
    '_frozen_importlib.__loader__.exec_module',  # exec
    '_frozen_importlib._exec',  # exec_module, load_module
    '_frozen_importlib._load_backward_compatible',  # load_module
    '_frozen_importlib._load_unlocked',  # exec_module
    '_frozen_importlib_external.FileLoader.get_data',  # FileIO
    '_frozen_importlib_external.NamespaceLoader.get_code',  # compile
    '_frozen_importlib_external.SourceLoader.source_to_code',  # compile
    '_frozen_importlib_external._LoaderBasics.exec_module',  # exec
    '_frozen_importlib_external._NamespaceLoader.get_code',  # compile
    '_frozen_importlib_external._write_atomic',  # FileIO, open, unlink
    '_osx_support._get_system_version',  # open
    '_osx_support._read_output',  # open, system
    '_osx_support._remove_unsupported_archs',  # system
    '_pyio.BufferedRandom.truncate',  # truncate
    '_pyio.BufferedWriter.truncate',  # truncate
    '_pyio.FileIO.__init__',  # open
    '_pyio.TextIOWrapper.truncate',  # truncate
    '_pyio._BufferedIOMixin.truncate',  # truncate
    '_pyio.__getattr__',  # open
    '_pyio._open_code_with_warning',  # open
    '_sitebuiltins._Printer._Printer__setup',  # open
    '_strptime._strptime',  # compile
    'aifc.Aifc_read.__init__',  # open
    'aifc.Aifc_write.__init__',  # open
    'argparse.ArgumentParser._read_args_from_files',  # open
    'argparse.FileType.__call__',  # open
    'argparse.HelpFormatter.__init__',  # compile
    'argparse._ActionsContainer.__init__',  # compile
    'ast.parse',  # compile
    'base64.main',  # open
    'bdb.Bdb.run',  # compile, exec
    'bdb.Bdb.runeval',  # eval
    'bdb.effective',  # eval
    'cProfile.Profile.dump_stats',  # open
    'cProfile.Profile.runctx',  # exec
    'cProfile.main',  # compile, run_module
    'cgi.initlog',  # open
    'cgi.log',  # open
    'cgi.test',  # exec
    'cgitb.Hook.handle',  # fdopen
    'code.InteractiveInterpreter.__init__',  # compile
    'code.InteractiveInterpreter.runcode',  # exec
    'code.InteractiveInterpreter.runsource',  # compile
    'codecs.open',  # open
    'codeop.Compile.__call__',  # compile
    'codeop._compile',  # compile
    'collections.namedtuple',  # eval
    'compileall.compile_file',  # compile, open, unlink
    'compileall.main',  # compile, open
    'configparser.RawConfigParser.__init__',  # compile
    'configparser.RawConfigParser.read',  # open
    'csv.Sniffer._guess_quote_and_delimiter',  # compile
    'dataclasses._create_fn',  # exec
    'dbm.open',  # __import__, open
    'dbm.whichdb',  # open
    'difflib._mdiff',  # compile
    'dis._try_compile',  # compile
    'dis.main',  # compile
    'doctest.DocTestFinder._find_lineno',  # compile
    'doctest.DocTestRunner._DocTestRunner__run',  # check_output, compile, exec, truncate
    'doctest._SpoofOut.truncate',  # truncate
    'doctest._load_testfile',  # open
    'doctest._normalize_module',  # __import__
    'doctest._test',  # __import__
    'doctest.debug_script',  # exec
    'encodings.search_function',  # __import__
    'filecmp._do_cmp',  # open
    'fileinput.FileInput._readline',  # chmod, fdopen, open, unlink
    'fileinput.FileInput.nextfile',  # unlink
    'fileinput.hook_compressed',  # open
    'fileinput.hook_encoded',  # open
    'ftplib.parse150',  # compile
    'ftplib.parse227',  # compile
    'getpass.getpass',  # FileIO, open
    'getpass.unix_getpass',  # FileIO, open
    'gettext.Catalog',  # open
    'gettext.c2py',  # exec
    'gettext.translation',  # open
    'glob._iterdir',  # open
    'gzip.GzipFile.__init__',  # open
    'gzip.main',  # open
    'imaplib.IMAP4.__init__',  # open
    'imaplib.IMAP4._connect',  # compile
    'imaplib.IMAP4._mode_ascii',  # compile
    'imaplib.IMAP4._mode_utf8',  # compile
    'imaplib.IMAP4_SSL.open',  # open
    'imaplib.IMAP4_stream.open',  # Popen
    'imghdr.what',  # open
    'imp._HackedGetData.get_data',  # open
    'imp.find_module',  # open
    'imp.load_module',  # open
    'inspect._main',  # import_module
    'inspect._signature_fromstr',  # eval
    'inspect.findsource',  # compile
    'inspect.get_annotations',  # eval
    'io.__getattr__',  # open
    'ipaddress._BaseAddress.__format__',  # compile
    'linecache.updatecache',  # open
    'logging.FileHandler.__init__',  # open
    'lzma.LZMAFile.__init__',  # open
    'mailbox.MH.__init__',  # open
    'mailbox.MH.__setitem__',  # open
    'mailbox.MH.get_bytes',  # open
    'mailbox.MH.get_file',  # open
    'mailbox.MH.get_message',  # open
    'mailbox.MH.get_sequences',  # open
    'mailbox.MH.lock',  # open
    'mailbox.MH.pack',  # unlink
    'mailbox.MH.remove',  # open
    'mailbox.MH.set_sequences',  # open
    'mailbox.Maildir.add_folder',  # open
    'mailbox.Maildir.get_bytes',  # open
    'mailbox.Maildir.get_file',  # open
    'mailbox.Maildir.get_message',  # open
    'mailbox._create_carefully',  # open
    'mailbox._lock_file',  # unlink
    'mailbox._singlefileMailbox.__init__',  # open
    'mailbox._singlefileMailbox._append_message',  # truncate
    'mailbox._singlefileMailbox.flush',  # chmod, open
    'mailcap.findmatch',  # system
    'mailcap.getcaps',  # open
    'mailcap.test',  # system
    'mimetypes.MimeTypes.read',  # open
    'mimetypes.read_mime_types',  # open
    'modulefinder.ModuleFinder.ensure_fromlist',  # import_module
    'modulefinder.ModuleFinder.find_head_package',  # import_module
    'modulefinder.ModuleFinder.import_module',  # load_module
    'modulefinder.ModuleFinder.load_file',  # load_module
    'modulefinder.ModuleFinder.load_module',  # compile
    'modulefinder.ModuleFinder.load_package',  # load_module
    'modulefinder.ModuleFinder.load_tail',  # import_module
    'modulefinder.ModuleFinder.run_script',  # load_module
    'netrc.netrc.__init__',  # open
    'nntplib.NNTP._getdescriptions',  # compile
    'nntplib.NNTP._getlongresp',  # open
    'nntplib.NNTP.xhdr',  # compile
    'optparse.Values.read_file',  # exec, open
    'optparse.Values.read_module',  # __import__
    'os._execvpe',  # execv, execve
    'os._fwalk',  # open
    'os._spawnvef',  # fork
    'os.execl',  # execv
    'os.execle',  # execve
    'os.execlp',  # execvp
    'os.execlpe',  # execvpe
    'os.fdopen',  # open
    'os.fwalk',  # open
    'os.popen',  # Popen
    'os.spawnl',  # spawnv
    'os.spawnle',  # spawnve
    'os.spawnlp',  # spawnvp
    'os.spawnv',  # execv
    'os.spawnve',  # execve
    'os.spawnvp',  # execvp
    'os.spawnvpe',  # execvpe
    'pathlib.Path.chmod',  # chmod
    'pathlib.Path.lchmod',  # chmod
    'pathlib.Path.open',  # open
    'pathlib.Path.read_bytes',  # open
    'pathlib.Path.read_text',  # open
    'pathlib.Path.symlink_to',  # symlink
    'pathlib.Path.touch',  # open
    'pathlib.Path.unlink',  # unlink
    'pathlib.Path.write_bytes',  # open
    'pathlib.Path.write_text',  # open
    'pathlib._PosixFlavour.compile_pattern',  # compile
    'pathlib._WindowsFlavour.compile_pattern',  # compile
    'pdb.Pdb.__init__',  # open
    'pdb.Pdb._getval',  # eval
    'pdb.Pdb._getval_except',  # eval
    'pdb.Pdb.default',  # compile, exec
    'pdb.Pdb.do_b',  # eval
    'pdb.Pdb.do_break',  # eval
    'pdb.find_function',  # compile, open
    'pickle._Pickler.save_global',  # __import__
    'pickle._Unpickler.find_class',  # __import__
    'pipes.Template.copy',  # system
    'pipes.Template.open_r',  # open, popen
    'pipes.Template.open_w',  # open, popen
    'pkgutil.ImpLoader._reopen',  # open
    'pkgutil.ImpLoader.get_code',  # compile
    'pkgutil.ImpLoader.get_data',  # open
    'pkgutil.ImpLoader.get_source',  # open
    'pkgutil.ImpLoader.load_module',  # load_module
    'pkgutil._import_imp',  # import_module
    'pkgutil.extend_path',  # open
    'pkgutil.iter_importers',  # import_module
    'pkgutil.resolve_name',  # compile, import_module
    'pkgutil.walk_packages',  # __import__
    'platform._Processor.from_subprocess',  # check_output
    'platform._mac_ver_xml',  # open
    'platform._syscmd_file',  # check_output
    'platform._syscmd_ver',  # check_output
    'platform.freedesktop_os_release',  # open
    'platform.libc_ver',  # open
    'platform.system',  # system
    'plistlib._PlistWriter.write_value',  # write_bytes
    'posixpath.expandvars',  # compile
    'profile.Profile.dump_stats',  # open
    'profile.Profile.runctx',  # exec
    'profile.main',  # compile, run_module
    'pstats.Stats.dump_stats',  # open
    'pstats.Stats.eval_print_amount',  # compile
    'pstats.Stats.load_stats',  # open
    'pty._open_terminal',  # open
    'pty.fork',  # fork, forkpty, open
    'pty.slave_open',  # open
    'pty.spawn',  # fork
    'py_compile.main',  # compile
    'pydoc.HTMLDoc.markup',  # compile
    'pydoc.Helper.help',  # eval
    'pydoc.ModuleScanner.run',  # __import__
    'pydoc._url_handler',  # open
    'pydoc.browse',  # open
    'pydoc.getpager',  # system, unlink
    'pydoc.importfile',  # open
    'pydoc.pipepager',  # Popen
    'pydoc.safeimport',  # __import__
    'pydoc.synopsis',  # open
    'pydoc.tempfilepager',  # open, system
    'pydoc.writedoc',  # open
    'quopri.main',  # open
    're.Scanner.__init__',  # compile
    're._compile',  # compile
    'rlcompleter.Completer.attr_matches',  # eval
    'runpy._get_code_from_file',  # compile
    'runpy._get_module_details',  # __import__
    'runpy._run_code',  # exec
    'shelve.DbfilenameShelf.__init__',  # open
    'shlex.shlex.sourcehook',  # open
    'shutil._copytree',  # symlink
    'shutil._make_tarball',  # open
    'shutil._rmtree_safe_fd',  # open, unlink
    'shutil._rmtree_unsafe',  # unlink
    'shutil._unpack_tarfile',  # open
    'shutil._unpack_zipfile',  # open
    'shutil.chown',  # chown
    'shutil.copyfile',  # open, symlink
    'shutil.copymode',  # chmod
    'shutil.move',  # rmtree, symlink, unlink
    'shutil.rmtree',  # open
    'site.addpackage',  # exec
    'site.venv',  # open
    'sndhdr.test_aifc',  # open
    'sndhdr.test_wav',  # open
    'sndhdr.whathdr',  # open
    'socketserver.ForkingMixIn.process_request',  # fork
    'string.Template.__init_subclass__',  # compile
    'subprocess.Popen.__init__',  # open
    'subprocess.Popen._get_devnull',  # open
    'subprocess.call',  # Popen
    'subprocess.check_call',  # call
    'subprocess.getstatusoutput',  # check_output
    'subprocess.run',  # Popen
    'sunau.Au_read.__init__',  # open
    'sunau.Au_write.__init__',  # open
    'sysconfig._generate_posix_vars',  # open
    'sysconfig._init_posix',  # __import__
    'sysconfig._parse_makefile',  # open
    'sysconfig.get_platform',  # compile
    'sysconfig.parse_config_h',  # compile
    'tabnanny.check',  # open
    'tarfile.TarFile._extract_member',  # chmod, chown
    'tarfile.TarFile.chmod',  # chmod
    'tarfile.TarFile.chown',  # chown
    'tarfile.TarFile.extractall',  # chmod, chown
    'tarfile.TarFile.makefile',  # truncate
    'tarfile.TarFile.makelink',  # symlink, unlink
    'tarfile.TarInfo._proc_pax',  # compile
    'tarfile._LowLevelFile.__init__',  # open
    'tarfile.is_tarfile',  # open
    'tarfile.main',  # open
    'telnetlib.Telnet.__init__',  # open
    'telnetlib.Telnet.expect',  # compile
    'telnetlib.test',  # open
    'tempfile.NamedTemporaryFile',  # open, unlink
    'tempfile.SpooledTemporaryFile.truncate',  # truncate
    'tempfile.TemporaryDirectory._rmtree',  # chmod, rmtree, unlink
    'tempfile.TemporaryFile',  # open, unlink
    'tempfile._get_default_tempdir',  # open, unlink
    'tempfile._mkstemp_inner',  # open
    'timeit.Timer.__init__',  # compile, exec
    'trace.CoverageResults.__init__',  # open
    'trace.CoverageResults.write_results',  # open
    'trace.CoverageResults.write_results_file',  # open
    'trace.Trace.runctx',  # exec
    'trace._find_executable_linenos',  # compile, open
    'trace._find_strings',  # open
    'trace.main',  # compile
    'tracemalloc.Snapshot.dump',  # open
    'tracemalloc.Snapshot.load',  # open
    'typing.ForwardRef.__init__',  # compile
    'typing.ForwardRef._evaluate',  # eval
    'uu.decode',  # chmod, open
    'uu.encode',  # open
    'uu.test',  # open
    'uuid._get_command_stdout',  # Popen
    'warnings._getcategory',  # __import__
    'warnings.filterwarnings',  # compile
    'wave.Wave_read.__init__',  # open
    'wave.Wave_write.__init__',  # open
    'webbrowser.BackgroundBrowser.open',  # Popen
    'webbrowser.BaseBrowser.open_new',  # open
    'webbrowser.BaseBrowser.open_new_tab',  # open
    'webbrowser.GenericBrowser.open',  # Popen
    'webbrowser.Grail._find_grail_rc',  # unlink
    'webbrowser.Konqueror.open',  # Popen
    'webbrowser.UnixBrowser._invoke',  # Popen
    'webbrowser.main',  # open
    'webbrowser.open',  # open
    'webbrowser.open_new',  # open
    'webbrowser.open_new_tab',  # open
    'webbrowser.register_standard_browsers',  # check_output
    'zipapp._copy_archive',  # chmod
    'zipapp.create_archive',  # chmod
    'zipfile.Path.open',  # open
    'zipfile.Path.read_bytes',  # open
    'zipfile.Path.read_text',  # open
    'zipfile.PyZipFile._get_codename',  # compile
    'zipfile.ZipFile.__init__',  # open
    'zipfile.ZipFile._extract_member',  # open
    'zipfile.ZipFile._write_end_record',  # truncate
    'zipfile.ZipFile.read',  # open
    'zipfile.ZipFile.testzip',  # open
    'zipfile.ZipFile.write',  # open
    'zipfile.ZipFile.writestr',  # open
    'zipfile.is_zipfile',  # open
    'zipimport._compile_source',  # compile
    'zipimport.zipimporter.load_module',  # exec
})

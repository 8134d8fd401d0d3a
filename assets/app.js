// Info Parquet — progressive enhancement only: every form works without this script.
// Upload forms marked data-upload-progress show the progress of the upload.
(function () {
  "use strict";
  document.querySelectorAll("form[data-upload-progress]").forEach(function (form) {
    var bar = form.querySelector(".ip-progress");
    var text = form.querySelector(".ip-progress-text");
    if (!bar || !window.FormData || !window.XMLHttpRequest) {
      return;
    }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var request = new XMLHttpRequest();
      request.open("POST", form.action);
      request.upload.addEventListener("progress", function (progress) {
        if (progress.lengthComputable) {
          var percent = Math.round((progress.loaded / progress.total) * 100);
          bar.hidden = false;
          bar.value = percent;
          text.textContent = "Envoi en cours : " + percent + " %";
        }
      });
      request.addEventListener("load", function () {
        // The server answers with the page to show next (after its redirect).
        window.location.assign(request.responseURL || window.location.href);
      });
      request.addEventListener("error", function () {
        text.textContent = "L'envoi a échoué. Vérifiez votre connexion et réessayez : rien n'a été perdu de ce qui était déjà enregistré.";
      });
      text.textContent = "Envoi en cours…";
      request.send(new FormData(form));
    });
  });
})();
